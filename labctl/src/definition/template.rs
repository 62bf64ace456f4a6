//! The templates of a definition (MiniJinja syntax: `{{ input.group }}`, `{% for o in outputs %}`)
//! and what each can name.
//!
//! Every field is rendered in one [`Scope`]; a placeholder the scope lacks is an error
//! (strict undefined), found when the file is loaded by rendering each template against a
//! sample of its scope. Commands are rendered, then split into arguments like a shell would
//! (quotes respected, no expansion, no pipes: use `sh -c '...'` for those).

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

/// What a template can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The hosts: `netns`, `scratch`, `control_socket`, `ident`, `bin_dir`, `streams`,
    /// `fanout`, `source`, `input.{ifname,addr}`, `outputs[k].{ifname,addr}`.
    Host,
    /// One rule: the host scope plus `rule`, `input.{group,port,source}`,
    /// `outputs[k].{index,group,port}`, and `output` when rules run once per output.
    Rule,
    /// The config file: the host scope plus `rules` (being added now) and `all_rules` (every
    /// installed rule), each a list of `{index, input, outputs}`.
    Config,
    /// The apply command: the host scope plus `config` (the written file's path).
    Apply,
}

/// The scope of a field's template.
pub fn scope_of(field: &str) -> Option<Scope> {
    let scope = match field {
        "version" | "cwd" | "start.command" | "ready.command" | "ready.path"
        | "rules.config.path" => Scope::Host,
        "rules.spawn" => Scope::Rule,
        "rules.config.template" => Scope::Config,
        "rules.config.apply" => Scope::Apply,
        f if f.starts_with("env.") => Scope::Host,
        f if f.starts_with("rules.add[") || f.starts_with("rules.remove[") => Scope::Rule,
        _ => return None,
    };
    Some(scope)
}

/// An interface of the relay namespace.
#[derive(Debug, Clone, Serialize)]
pub struct Iface {
    pub ifname: String,
    pub addr: String,
}

/// What every scope has.
#[derive(Debug, Clone, Serialize)]
pub struct Host {
    pub netns: String,
    pub scratch: String,
    pub control_socket: String,
    /// A name unique to this start (for programs that want an instance name).
    pub ident: String,
    /// Directory of labctl and this build's relay and loadgen.
    pub bin_dir: String,
    pub streams: u32,
    pub fanout: u32,
    /// The streams' source address (the generator).
    pub source: String,
}

/// A rule's input.
#[derive(Debug, Clone, Serialize)]
pub struct Input {
    pub ifname: String,
    pub addr: String,
    pub group: String,
    pub port: u16,
    pub source: String,
}

/// One output of a rule.
#[derive(Debug, Clone, Serialize)]
pub struct Output {
    pub index: u32,
    pub ifname: String,
    pub addr: String,
    pub group: String,
    pub port: u16,
}

/// One forwarding rule.
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    pub index: u32,
    pub input: Input,
    pub outputs: Vec<Output>,
}

/// The values of the host scope.
#[derive(Debug, Clone, Serialize)]
pub struct HostScope<'a> {
    #[serde(flatten)]
    pub host: &'a Host,
    pub input: &'a Iface,
    pub outputs: &'a [Iface],
}

/// The values of a rule's scope.
#[derive(Debug, Clone, Serialize)]
pub struct RuleScope<'a> {
    #[serde(flatten)]
    pub host: &'a Host,
    pub rule: u32,
    pub input: &'a Input,
    pub outputs: &'a [Output],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<&'a Output>,
}

/// The values of the config file's scope.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigScope<'a> {
    #[serde(flatten)]
    pub host: &'a Host,
    pub input: &'a Iface,
    pub outputs: &'a [Iface],
    pub rules: &'a [Rule],
    pub all_rules: &'a [Rule],
}

/// The values of the apply command's scope.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyScope<'a> {
    #[serde(flatten)]
    pub host: &'a Host,
    pub input: &'a Iface,
    pub outputs: &'a [Iface],
    pub config: &'a str,
}

/// The compiled templates of one definition, by field.
pub struct Templates {
    env: Environment<'static>,
    fields: Vec<String>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("fields", &self.fields)
            .finish()
    }
}

impl Templates {
    /// Compiles every (field, source) and renders each against a sample of its scope, so that
    /// syntax errors and unknown placeholders are found now.
    /// `per_output`: rule templates run once per output (`rules.each = "output"`) and may name
    /// `output`.
    pub fn compile(
        sources: Vec<(String, String)>,
        per_output: bool,
    ) -> Result<Templates, (String, String)> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_keep_trailing_newline(true);
        env.set_trim_blocks(true);
        let mut fields = Vec::new();
        for (field, source) in sources {
            let scope = scope_of(&field)
                .ok_or_else(|| (field.clone(), "is not a templated field".to_owned()))?;
            env.add_template_owned(field.clone(), source.clone())
                .map_err(|e| (field.clone(), syntax_message(&e, &source)))?;
            fields.push(field);
            let templates = Templates {
                env: env.clone(),
                fields: Vec::new(),
            };
            let last = fields.last().map_or("", String::as_str);
            templates
                .render_sample(last, scope, per_output)
                .map_err(|message| (last.to_owned(), message))?;
        }
        Ok(Templates { env, fields })
    }

    /// True when the definition has a template for `field`.
    pub fn has(&self, field: &str) -> bool {
        self.fields.iter().any(|f| f == field)
    }

    /// Fields with templates, in file order.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// Renders `field` with `values`.
    pub fn render(&self, field: &str, values: impl Serialize) -> Result<String, String> {
        let template = self
            .env
            .get_template(field)
            .map_err(|e| format!("{field}: {e}"))?;
        let source = template.source().to_owned();
        template
            .render(values)
            .map_err(|e| render_message(&e, &source))
    }

    /// Renders a command field and splits it into arguments.
    pub fn command(&self, field: &str, values: impl Serialize) -> Result<Vec<String>, String> {
        let text = self.render(field, values)?;
        split_command(&text)
    }

    fn render_sample(&self, field: &str, scope: Scope, per_output: bool) -> Result<(), String> {
        let sample = Sample::new();
        let rendered = match scope {
            Scope::Host => self.render(field, sample.host_scope()),
            Scope::Rule => self.render(field, sample.rule_scope(per_output)),
            Scope::Config => self.render(field, sample.config_scope()),
            Scope::Apply => self.render(field, sample.apply_scope()),
        }?;
        let is_command = !matches!(
            field,
            "rules.config.template" | "rules.config.path" | "ready.path" | "cwd"
        ) && !field.starts_with("env.");
        if is_command {
            split_command(&rendered)?;
        }
        Ok(())
    }
}

/// Splits a rendered command like a shell would (quotes, no expansion).
pub fn split_command(text: &str) -> Result<Vec<String>, String> {
    match shlex::split(text) {
        Some(args) if !args.is_empty() => Ok(args),
        Some(_) => Err("the command is empty".to_owned()),
        None => Err(format!("unbalanced quotes in `{}`", text.trim())),
    }
}

fn syntax_message(e: &minijinja::Error, source: &str) -> String {
    format!(
        "template syntax: {} in `{}`",
        e.detail().unwrap_or("error"),
        excerpt(source, e.range())
    )
}

fn render_message(e: &minijinja::Error, source: &str) -> String {
    let at = excerpt(source, e.range());
    match e.kind() {
        minijinja::ErrorKind::UndefinedError => format!(
            "unknown placeholder `{at}` (this field can name: {})",
            e.name()
                .and_then(scope_of)
                .map_or("see systems/README.md", names_of)
        ),
        _ => format!("{} in `{at}`", e.detail().unwrap_or("template error")),
    }
}

fn excerpt(source: &str, range: Option<std::ops::Range<usize>>) -> String {
    let text = range.and_then(|r| source.get(r)).unwrap_or(source).trim();
    let mut short: String = text.chars().take(80).collect();
    if short.len() < text.len() {
        short.push_str("...");
    }
    short.replace('\n', " ")
}

/// The placeholders of a scope, for error messages.
pub fn names_of(scope: Scope) -> &'static str {
    match scope {
        Scope::Host => {
            "netns, scratch, control_socket, ident, bin_dir, streams, fanout, source, input.ifname, input.addr, outputs[k].ifname, outputs[k].addr"
        }
        Scope::Rule => {
            "the host placeholders, rule, input.{ifname,addr,group,port,source}, outputs[k].{index,ifname,addr,group,port}, output.* (with rules.each = \"output\")"
        }
        Scope::Config => {
            "the host placeholders, rules and all_rules (lists of {index, input, outputs})"
        }
        Scope::Apply => "the host placeholders, config (the written file)",
    }
}

/// Sample values of every scope, to check templates at load time.
struct Sample {
    host: Host,
    iface_in: Iface,
    ifaces_out: Vec<Iface>,
    rules: Vec<Rule>,
}

impl Sample {
    fn new() -> Sample {
        let iface = |n: &str, a: &str| Iface {
            ifname: n.to_owned(),
            addr: a.to_owned(),
        };
        let rule = Rule {
            index: 0,
            input: Input {
                ifname: "rin".into(),
                addr: "198.18.0.2".into(),
                group: "239.1.0.1".into(),
                port: 5000,
                source: "198.18.0.1".into(),
            },
            outputs: vec![Output {
                index: 0,
                ifname: "rout0".into(),
                addr: "198.18.1.1".into(),
                group: "239.2.0.1".into(),
                port: 5000,
            }],
        };
        Sample {
            host: Host {
                netns: "mlab-sample-relay".into(),
                scratch: "/tmp/mlab-sample".into(),
                control_socket: "/tmp/mlab-sample/control.sock".into(),
                ident: "mlab000000".into(),
                bin_dir: "/usr/local/bin".into(),
                streams: 1,
                fanout: 1,
                source: "198.18.0.1".into(),
            },
            iface_in: iface("rin", "198.18.0.2"),
            ifaces_out: vec![iface("rout0", "198.18.1.1")],
            rules: vec![rule],
        }
    }

    fn host_scope(&self) -> HostScope<'_> {
        HostScope {
            host: &self.host,
            input: &self.iface_in,
            outputs: &self.ifaces_out,
        }
    }

    fn rule_scope(&self, per_output: bool) -> RuleScope<'_> {
        let rule = &self.rules[0];
        RuleScope {
            host: &self.host,
            rule: rule.index,
            input: &rule.input,
            outputs: &rule.outputs,
            output: rule.outputs.first().filter(|_| per_output),
        }
    }

    fn config_scope(&self) -> ConfigScope<'_> {
        ConfigScope {
            host: &self.host,
            input: &self.iface_in,
            outputs: &self.ifaces_out,
            rules: &self.rules,
            all_rules: &self.rules,
        }
    }

    fn apply_scope(&self) -> ApplyScope<'_> {
        ApplyScope {
            host: &self.host,
            input: &self.iface_in,
            outputs: &self.ifaces_out,
            config: "/tmp/mlab-sample/rules.conf",
        }
    }
}
