use super::template::{ConfigScope, Host, Iface, Input, Output, Rule, RuleScope};
use super::*;

fn shipped(name: &str) -> Definition {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(SYSTEM_DIR)
        .join(format!("{name}.toml"));
    Definition::load(name, &path).unwrap()
}

fn parse(text: &str) -> Result<Definition, DefinitionError> {
    Definition::parse("mine", Path::new("systems/mine.toml"), text)
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

fn host() -> Host {
    Host {
        netns: "ns".into(),
        scratch: "/tmp/s".into(),
        control_socket: "/tmp/s/control.sock".into(),
        ident: "mlab1".into(),
        bin_dir: "/bin".into(),
        streams: 3,
        fanout: 2,
        source: "198.18.1.1".into(),
    }
}

/// Rule `i` with `fanout` outputs o0.. on 198.18.(2+k).2, groups as in docs/interfaces.md
/// (`rename`) or the input group (kernel).
fn rule(i: u32, fanout: u32, rename: bool) -> Rule {
    let group = |base: u32| std::net::Ipv4Addr::from(base + i).to_string();
    Rule {
        index: i,
        input: Input {
            ifname: "in".into(),
            addr: "198.18.1.2".into(),
            group: group(0xef01_0001),
            port: 5000,
            source: "198.18.1.1".into(),
        },
        outputs: (0..fanout)
            .map(|k| Output {
                index: k,
                ifname: format!("o{k}"),
                addr: format!("198.18.{}.2", k + 2),
                group: if rename {
                    group(0xef02_0001 + (k << 16))
                } else {
                    group(0xef01_0001)
                },
                port: if rename { 5000 + k as u16 } else { 5000 },
            })
            .collect(),
    }
}

#[test]
fn shipped_socat_runs_the_command_line_of_the_former_built_in() {
    let def = shipped("socat");
    let r = rule(2, 2, true);
    let scope = RuleScope {
        host: &host(),
        rule: 2,
        input: &r.input,
        outputs: &r.outputs,
        output: Some(&r.outputs[1]),
    };
    assert_eq!(
        def.templates.command("rules.spawn", &scope).unwrap(),
        [
            "socat",
            "-u",
            "UDP4-RECV:5000,bind=239.1.0.3,reuseaddr,ip-add-membership=239.1.0.3:198.18.1.2,rcvbuf=4194304",
            "UDP4-SENDTO:239.3.0.3:5001,ip-multicast-if=198.18.3.2,ip-multicast-ttl=8,ip-multicast-loop=0",
        ]
    );
    assert_eq!(def.settings.rules.each, Each::Output);
    assert!(def.can().rename);
}

#[test]
fn shipped_kernel_writes_the_batch_of_the_former_built_in() {
    let def = shipped("kernel");
    let render = |rules: &[Rule]| {
        let scope = ConfigScope {
            host: &host(),
            input: &Iface {
                ifname: "in".into(),
                addr: "198.18.1.2".into(),
            },
            outputs: &[],
            rules,
            all_rules: rules,
        };
        def.templates
            .render("rules.config.template", &scope)
            .unwrap()
    };
    assert_eq!(
        render(&[rule(0, 2, false), rule(1, 2, false)]),
        "join in 239.1.0.1\nadd in 198.18.1.1 239.1.0.1 o0 o1\njoin in 239.1.0.2\nadd in 198.18.1.1 239.1.0.2 o0 o1\n"
    );
    // smcroutectl keeps 5 outbound interfaces per batch line: 7 go on two lines.
    assert_eq!(
        render(&[rule(0, 7, false)]),
        "join in 239.1.0.1\nadd in 198.18.1.1 239.1.0.1 o0 o1 o2 o3 o4\nadd in 198.18.1.1 239.1.0.1 o5 o6\n"
    );
    assert!(!def.can().rename);
    assert_eq!(def.sysctls().get("net.ipv4.ip_forward").unwrap(), "1");
}

#[test]
fn every_shipped_definition_loads() {
    let names = shipped_names();
    assert!(names.contains(&"socat".to_owned()) && names.contains(&"kernel".to_owned()));
    for name in names {
        Definition::find(&name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

const MINIMAL: &str = "[start]\ncommand = \"myrelay --ctl {{ control_socket }}\"\n[rules]\nadd = [\"myctl add {{ input.group }}\"]\n";

#[test]
fn a_minimal_definition_loads_with_defaults() {
    let def = parse(MINIMAL).unwrap();
    assert!(def.can().rename && def.can().fanout && def.can().joins);
    assert_eq!(def.settings.stop.signal, "TERM");
    assert_eq!(def.stop_grace(), Duration::from_secs(3));
    assert!(def.refusal(64).is_none());
    let refusal = def.refusal(65).unwrap();
    assert!(refusal.contains("at most 64 outputs"), "{refusal}");
}

#[test]
fn an_unknown_placeholder_names_file_line_system_field_and_placeholder() {
    let text = "[start]\ncommand = \"r\"\n[rules]\nadd = [\"ctl add {{ input.grop }}\"]\n";
    let msg = err(text);
    assert!(
        msg.starts_with("systems/mine.toml:4: system mine: field `rules.add[0]`"),
        "{msg}"
    );
    assert!(msg.contains("unknown placeholder `input.grop`"), "{msg}");
    // A host-scope field cannot name a rule's group.
    let msg = err("[start]\ncommand = \"r {{ input.group }}\"\n[rules]\nadd = [\"a\"]\n");
    assert!(msg.contains("field `start.command`"), "{msg}");
    assert!(msg.contains("unknown placeholder"), "{msg}");
    // `output` exists only when rules run once per output.
    let msg = err("[rules]\nspawn = \"x {{ output.group }}\"\n");
    assert!(msg.contains("field `rules.spawn`"), "{msg}");
    parse("[rules]\neach = \"output\"\nspawn = \"x {{ output.group }}\"\n").unwrap();
}

#[test]
fn bad_definitions_are_one_line_errors_naming_the_field() {
    let cases = [
        ("[rules]\nadd = [\"a\"]\n", "field `start.command`: missing"),
        (
            "[start]\ncommand = \"r\"\n",
            "field `rules`: no way to install",
        ),
        (
            "[start]\ncommand = \"r\"\n[rules]\nadd = [\"a\"]\n[stop]\nsignal = \"KILL\"\n",
            "field `stop.signal`",
        ),
        (
            "[start]\ncommand = \"r 'x\"\n[rules]\nadd = [\"a\"]\n",
            "unbalanced quotes",
        ),
        (
            "[start]\ncommand = \"r {{ \"\n[rules]\nadd = [\"a\"]\n",
            "template syntax",
        ),
        (
            "[start]\ncommand = \"r\"\n[rules]\nadd = [\"a\"]\n[ready]\ncommand = \"t\"\ndeadline_s = -1\n",
            "field `ready.deadline_s`",
        ),
        (
            "[start]\ncommand = \"r\"\nfoo = 1\n[rules]\nadd = [\"a\"]\n",
            "unknown field `foo`",
        ),
        (
            "[start]\ncommand = \"r\"\n[rules.config]\npath = \"{{ scratch }}/c\"\ntemplate_file = \"nope.j2\"\napply = \"x\"\n",
            "field `rules.config.template_file`: cannot read systems/nope.j2",
        ),
        (
            "[start]\ncommand = \"r\"\n[rules.config]\npath = \"p\"\ntemplate = \"t\"\n",
            "field `rules.config.apply`: missing",
        ),
    ];
    for (text, expected) in cases {
        let msg = err(text);
        assert!(msg.contains(expected), "{text:?}: {msg}");
        assert!(msg.contains("system mine"), "{msg}");
        assert!(msg.starts_with("systems/mine.toml:"), "{msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
    }
}

#[test]
fn a_missing_definition_lists_the_shipped_ones() {
    let msg = Definition::find("no-such-relay").unwrap_err().to_string();
    assert!(
        msg.contains("no system definition named `no-such-relay`"),
        "{msg}"
    );
    assert!(msg.contains("socat") && msg.contains("kernel"), "{msg}");
    let msg = Definition::find("/nonexistent/x.toml")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("system /nonexistent/x.toml: cannot read"),
        "{msg}"
    );
}

#[test]
fn a_system_that_cannot_fan_out_refuses_such_points() {
    let def = parse(&format!("{MINIMAL}[can]\nfanout = false\n")).unwrap();
    assert!(def.refusal(1).is_none());
    let msg = def.refusal(2).unwrap();
    assert!(msg.contains("mine cannot fan out"), "{msg}");
    assert!(msg.contains("can.fanout = false"), "{msg}");
}

#[test]
fn a_system_may_say_it_does_not_join() {
    let def = parse(&format!("{MINIMAL}[can]\njoins = false\n")).unwrap();
    assert!(!def.can().joins);
    assert!(
        def.can().fanout,
        "the other capabilities keep their defaults"
    );
    let e = err(&format!("{MINIMAL}[can]\njoins = \"no\"\n"));
    assert!(e.contains("joins"), "{e}");
}

#[test]
fn a_definition_may_not_set_a_global_sysctl() {
    let dir = tempfile::tempdir().unwrap();
    let def = dir.path().join("global.toml");
    std::fs::write(
        &def,
        format!("{MINIMAL}[sysctls]\n\"net.core.rmem_max\" = \"8388608\"\n"),
    )
    .unwrap();
    let text = format!(
        "name = \"g\"\nsystems = [\"{}\"]\nstreams = [1]\n",
        def.display()
    );
    let msg = crate::scenario::Scenario::parse(&text, Path::new("g.toml"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("field `sysctls`"), "{msg}");
    assert!(msg.contains("net.core.rmem_max"), "{msg}");
    assert!(msg.contains("system "), "{msg}");
}
