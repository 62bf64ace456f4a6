//! The pool against the fake kernel: the relay's use (keyed joins, reference counts, the three
//! strategies, the report) and the sink's (a list of groups on one interface).

use super::fake::{FakeFactory, FakeKernel};
use super::*;
use std::cell::RefCell;
use std::net::Ipv4Addr;
use std::rc::Rc;

fn setup(
    strategy: Strategy,
    kernel_limit: usize,
    igmp_max: u64,
) -> (Memberships<FakeFactory>, Rc<RefCell<FakeKernel>>) {
    let (factory, kernel) = FakeFactory::new(kernel_limit);
    let limits = Limits {
        igmp_max_memberships: igmp_max,
        optmem_max: 131072,
    };
    (Memberships::new(strategy, limits, factory), kernel)
}

fn group(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(239, 1, 0, 0)) + n)
}

fn groups(range: std::ops::RangeInclusive<u32>) -> Vec<Ipv4Addr> {
    range.map(group).collect()
}

fn key(interface: &str, n: u32) -> (MembershipKey, JoinTarget) {
    (
        MembershipKey {
            interface: interface.into(),
            group: group(n),
            source: None,
        },
        JoinTarget {
            ifindex: 2,
            ifaddr: None,
            group: group(n),
            source: None,
        },
    )
}

fn join(m: &mut Memberships<FakeFactory>, interface: &str, n: u32) -> Result<(), MembershipError> {
    let (k, t) = key(interface, n);
    m.join(&k, &t)
}

fn leave(m: &mut Memberships<FakeFactory>, interface: &str, n: u32) {
    m.leave(&key(interface, n).0).unwrap();
}

fn socket_sizes(m: &Memberships<FakeFactory>) -> Vec<usize> {
    m.report().interfaces[0]
        .sockets
        .iter()
        .map(|s| s.groups.len())
        .collect()
}

// ---- the relay's use: keyed joins with references ----

#[test]
fn pool_places_by_capacity_on_new_sockets() {
    let (mut m, kernel) = setup(Strategy::Pool, 20, 20);
    for n in 1..=45 {
        join(&mut m, "a", n).unwrap();
    }
    assert_eq!(socket_sizes(&m), vec![20, 20, 5]);
    assert_eq!(kernel.borrow().open_sockets, 3);
    assert!(m.report().interfaces[0].join_failures.is_empty());
}

#[test]
fn pool_spills_to_a_new_socket_on_enobufs() {
    // The kernel refuses at 7 although the sysctls promise 20.
    let (mut m, kernel) = setup(Strategy::Pool, 7, 20);
    for n in 1..=15 {
        join(&mut m, "a", n).unwrap();
    }
    assert_eq!(socket_sizes(&m), vec![7, 7, 1]);
    assert_eq!(m.report().interfaces[0].sockets[0].capacity, 7);
    assert_eq!(kernel.borrow().joins.len(), 15);
}

#[test]
fn pool_fails_cleanly_when_even_a_new_socket_refuses() {
    let (mut m, kernel) = setup(Strategy::Pool, 0, 20);
    let err = join(&mut m, "a", 1).unwrap_err();
    assert_eq!(err.errno(), Some(libc::ENOBUFS));
    assert_eq!(kernel.borrow().open_sockets, 0, "empty socket closed");
    assert_eq!(m.report().interfaces[0].join_failures.len(), 1);
}

#[test]
fn shared_groups_are_reference_counted() {
    let (mut m, kernel) = setup(Strategy::Pool, 20, 20);
    join(&mut m, "a", 1).unwrap();
    join(&mut m, "a", 1).unwrap();
    join(&mut m, "b", 1).unwrap(); // other interface: separate membership
    assert_eq!(kernel.borrow().joins.len(), 2);
    assert_eq!(m.references(&key("a", 1).0), 2);
    leave(&mut m, "a", 1);
    assert!(kernel.borrow().leaves.is_empty(), "still used by one rule");
    leave(&mut m, "a", 1);
    assert_eq!(kernel.borrow().leaves, vec![(1, group(1))]);
    assert_eq!(m.references(&key("a", 1).0), 0);
    assert!(matches!(
        m.leave(&key("a", 1).0),
        Err(MembershipError::NotJoined(_))
    ));
    assert_eq!(kernel.borrow().open_sockets, 1, "only b's socket is left");
}

#[test]
fn empty_sockets_are_closed_and_holes_reused() {
    let (mut m, kernel) = setup(Strategy::Pool, 20, 20);
    for n in 1..=25 {
        join(&mut m, "a", n).unwrap();
    }
    assert_eq!(kernel.borrow().open_sockets, 2);
    for n in 21..=25 {
        leave(&mut m, "a", n);
    }
    assert_eq!(kernel.borrow().open_sockets, 1);
    leave(&mut m, "a", 3);
    join(&mut m, "a", 99).unwrap();
    assert_eq!(kernel.borrow().open_sockets, 1, "hole on socket 1 reused");
    m.leave_all();
    assert_eq!(kernel.borrow().open_sockets, 0);
    assert!(m.report().interfaces.is_empty());
}

#[test]
fn single_refuses_the_21st_group_with_a_clear_error() {
    let (mut m, kernel) = setup(Strategy::Single, 20, 20);
    for n in 1..=20 {
        join(&mut m, "in0", n).unwrap();
    }
    let err = join(&mut m, "in0", 21).unwrap_err();
    let text = err.to_string();
    assert_eq!(err.errno(), Some(105));
    for needle in [
        "ENOBUFS",
        "errno 105",
        "in0",
        "20 groups",
        "igmp_max_memberships = 20",
        "optmem_max = 131072",
        "--membership pool",
    ] {
        assert!(text.contains(needle), "{needle:?} missing in {text}");
    }
    assert_eq!(kernel.borrow().open_sockets, 1);
    assert_eq!(m.references(&key("in0", 21).0), 0);
    assert_eq!(m.references(&key("in0", 20).0), 1);
    let report = m.report();
    assert_eq!(report.interfaces[0].sockets[0].groups.len(), 20);
    assert_eq!(report.interfaces[0].join_failures[0].errno, 105);
}

#[test]
fn per_group_opens_one_socket_per_group() {
    let (mut m, kernel) = setup(Strategy::PerGroup, 20, 20);
    for n in 1..=30 {
        join(&mut m, "a", n).unwrap();
    }
    assert_eq!(kernel.borrow().open_sockets, 30);
    leave(&mut m, "a", 5);
    assert_eq!(kernel.borrow().open_sockets, 29);
}

#[test]
fn remembered_failures_are_bounded() {
    let (mut m, _) = setup(Strategy::Single, 1, 20);
    join(&mut m, "a", 1).unwrap();
    for n in 2..=100 {
        assert!(join(&mut m, "a", n).is_err());
    }
    let failures = &m.report().interfaces[0].join_failures;
    assert_eq!(failures.len(), pool::MAX_REMEMBERED_FAILURES);
    assert_eq!(failures.last().unwrap().group, group(100), "newest kept");
}

#[test]
fn report_serialises_the_strategy_by_its_name() {
    let (mut m, _) = setup(Strategy::PerGroup, 20, 20);
    join(&mut m, "a", 1).unwrap();
    let json = serde_json::to_value(m.report()).unwrap();
    assert_eq!(json["strategy"], "per-group");
    assert_eq!(json["capacity_per_socket"], 20);
    assert_eq!(json["interfaces"][0]["sockets"][0]["groups"][0]["rules"], 1);
}

// ---- the sink's use: a list of groups on one interface ----

#[test]
fn sink_joins_past_the_per_socket_limit() {
    let (mut m, kernel) = setup(Strategy::Pool, 20, 20);
    let joins = m.join_groups("veth0", 7, &groups(1..=50));
    assert_eq!(joins.joined, groups(1..=50));
    assert!(joins.refused.is_empty());
    assert_eq!(m.socket_count("veth0"), 3);
    assert_eq!(socket_sizes(&m), vec![20, 20, 10]);
    assert_eq!(kernel.borrow().joins.len(), 50);
}

#[test]
fn sink_capacity_is_bounded_by_optmem_too() {
    // Raised igmp_max_memberships but the default optmem_max of some kernels: 20480 / 48 = 426.
    let (factory, kernel) = FakeFactory::new(usize::MAX);
    let limits = Limits {
        igmp_max_memberships: 100_000,
        optmem_max: 20480,
    };
    let mut m = Memberships::new(Strategy::Pool, limits, factory);
    let joins = m.join_groups("veth0", 7, &groups(1..=1000));
    assert_eq!(joins.joined.len(), 1000);
    assert_eq!(socket_sizes(&m), vec![426, 426, 148]);
    assert_eq!(kernel.borrow().open_sockets, 3);
}

#[test]
fn sink_spills_on_enobufs_when_capacity_overstated() {
    // The sysctls promise 10000 per socket, the kernel takes 20.
    let (mut m, _) = setup(Strategy::Pool, 20, 10_000);
    let joins = m.join_groups("veth0", 7, &groups(1..=41));
    assert_eq!(joins.joined.len(), 41);
    assert!(joins.refused.is_empty());
    assert_eq!(socket_sizes(&m), vec![20, 20, 1]);
}

#[test]
fn sink_refusals_carry_group_errno_and_message_and_the_rest_go_on() {
    let (mut m, kernel) = setup(Strategy::Pool, 0, 20);
    let joins = m.join_groups("veth0", 7, &groups(1..=3));
    assert!(joins.joined.is_empty());
    let refused: Vec<(Ipv4Addr, Option<i32>)> = joins
        .refused
        .iter()
        .map(|r| (r.group, r.error.errno()))
        .collect();
    assert_eq!(
        refused,
        groups(1..=3)
            .into_iter()
            .map(|g| (g, Some(libc::ENOBUFS)))
            .collect::<Vec<_>>()
    );
    let message = joins.refused[0].error.to_string();
    assert!(
        message.contains("ENOBUFS") && message.contains("veth0"),
        "{message}"
    );
    assert!(
        !message.contains("--membership"),
        "no relay advice: {message}"
    );
    assert_eq!(kernel.borrow().open_sockets, 0);
}

#[test]
fn sink_reports_a_socket_that_cannot_be_opened() {
    let (mut factory, _) = FakeFactory::new(20);
    factory.open_errno = Some(libc::EMFILE);
    let limits = Limits {
        igmp_max_memberships: 20,
        optmem_max: 131072,
    };
    let mut m = Memberships::new(Strategy::Pool, limits, factory);
    let joins = m.join_groups("veth0", 7, &groups(1..=2));
    assert_eq!(joins.refused.len(), 2);
    assert_eq!(joins.refused[0].error.errno(), Some(libc::EMFILE));
    assert!(joins.refused[0].error.to_string().contains("veth0"));
}

// ---- any-source and source-specific joins of one group ----

const SOURCE_1: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const SOURCE_2: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);

/// Group `n` on "in0", any-source (`None`) or from `source`.
fn keyed(n: u32, source: Option<Ipv4Addr>) -> (MembershipKey, JoinTarget) {
    let (mut k, mut t) = key("in0", n);
    k.source = source;
    t.source = source;
    t.ifaddr = Some(Ipv4Addr::new(198, 18, 0, 1));
    (k, t)
}

fn join_keyed(
    m: &mut Memberships<FakeFactory>,
    n: u32,
    source: Option<Ipv4Addr>,
) -> Result<(), MembershipError> {
    let (k, t) = keyed(n, source);
    m.join(&k, &t)
}

/// (group, source) of every membership per socket, in socket order.
fn placement(m: &Memberships<FakeFactory>) -> Vec<Vec<(Ipv4Addr, Option<Ipv4Addr>)>> {
    m.report().interfaces[0]
        .sockets
        .iter()
        .map(|s| s.groups.iter().map(|g| (g.group, g.source)).collect())
        .collect()
}

#[test]
fn fake_kernel_models_linux_mixing_rules() {
    // What the pool works around, checked on the fake itself: one socket, both orders.
    let (mut factory, kernel) = FakeFactory::new(20);
    let mut socket = factory.open("in0").unwrap();
    socket.join(&keyed(1, None).1).unwrap();
    socket.join(&keyed(1, Some(SOURCE_1)).1).unwrap();
    assert_eq!(kernel.borrow().silent_mode_switches, 1, "ASM turned SSM");
    let err = socket.join(&keyed(1, None).1).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EADDRINUSE));
    socket.join(&keyed(1, Some(SOURCE_2)).1).unwrap();
    assert_eq!(
        kernel.borrow().refusals,
        vec![(1, group(1), libc::EADDRINUSE)]
    );
}

#[test]
fn pool_puts_any_source_then_source_specific_on_separate_sockets() {
    let (mut m, kernel) = setup(Strategy::Pool, 20, 20);
    join_keyed(&mut m, 1, None).unwrap();
    join_keyed(&mut m, 1, Some(SOURCE_1)).unwrap();
    join_keyed(&mut m, 1, Some(SOURCE_2)).unwrap();
    join_keyed(&mut m, 2, None).unwrap();
    assert_eq!(
        placement(&m),
        vec![
            vec![(group(1), None), (group(2), None)],
            vec![(group(1), Some(SOURCE_1)), (group(1), Some(SOURCE_2))],
        ],
        "sources of one group share a socket, other groups fill the first"
    );
    let k = kernel.borrow();
    assert_eq!(k.silent_mode_switches, 0, "no any-source membership lost");
    assert!(k.refusals.is_empty(), "placed without a refusal");
    assert!(m.report().interfaces[0].join_failures.is_empty());
}

#[test]
fn pool_puts_source_specific_then_any_source_on_separate_sockets() {
    let (mut m, kernel) = setup(Strategy::Pool, 20, 20);
    join_keyed(&mut m, 1, Some(SOURCE_1)).unwrap();
    join_keyed(&mut m, 1, None).unwrap();
    assert_eq!(
        placement(&m),
        vec![vec![(group(1), Some(SOURCE_1))], vec![(group(1), None)]]
    );
    assert!(kernel.borrow().refusals.is_empty());
    // Both leave cleanly, each from its own socket.
    m.leave(&keyed(1, None).0).unwrap();
    m.leave(&keyed(1, Some(SOURCE_1)).0).unwrap();
    assert_eq!(kernel.borrow().open_sockets, 0);
    assert_eq!(kernel.borrow().leaves, vec![(2, group(1)), (1, group(1))]);
}

#[test]
fn pool_spills_on_einval_and_eaddrinuse_and_does_not_ask_that_socket_again() {
    for errno in [libc::EINVAL, libc::EADDRINUSE] {
        let (mut m, kernel) = setup(Strategy::Pool, 20, 20);
        kernel.borrow_mut().refuse.push((1, group(1), errno));
        join_keyed(&mut m, 2, None).unwrap(); // opens socket 1
        join_keyed(&mut m, 1, Some(SOURCE_1)).unwrap();
        join_keyed(&mut m, 1, Some(SOURCE_2)).unwrap();
        join_keyed(&mut m, 3, None).unwrap();
        assert_eq!(
            kernel.borrow().refusals,
            vec![(1, group(1), errno)],
            "socket 1 asked for group 1 once only (errno {errno})"
        );
        assert_eq!(
            placement(&m),
            vec![
                vec![(group(2), None), (group(3), None)],
                vec![(group(1), Some(SOURCE_1)), (group(1), Some(SOURCE_2))],
            ],
            "errno {errno}: spilled, and other groups still fill socket 1"
        );
        let report = m.report();
        assert_eq!(report.interfaces[0].sockets[0].capacity, 20, "not full");
        assert!(report.interfaces[0].join_failures.is_empty());
    }
}

#[test]
fn single_refuses_mixing_in_plain_words_in_both_orders() {
    for (first, second) in [(None, Some(SOURCE_1)), (Some(SOURCE_1), None)] {
        let (mut m, kernel) = setup(Strategy::Single, 20, 20);
        join_keyed(&mut m, 1, first).unwrap();
        let err = join_keyed(&mut m, 1, second).unwrap_err();
        let text = err.to_string();
        let (existing, wanted) = match first {
            None => ("any-source", "source-specific (source 198.18.1.1)"),
            Some(_) => ("source-specific (source 198.18.1.1)", "any-source"),
        };
        for needle in [
            format!("group {} on in0 is already joined {existing}", group(1)),
            "on this interface's only helper socket".to_string(),
            format!("the `single` strategy cannot also join it {wanted}: use `pool`"),
        ] {
            assert!(text.contains(&needle), "{needle:?} missing in {text}");
        }
        assert!(!text.contains("errno"), "no bare errno: {text}");
        let k = kernel.borrow();
        assert_eq!(k.silent_mode_switches, 0, "the kernel was not asked");
        assert!(k.refusals.is_empty(), "the kernel was not asked");
        assert_eq!(m.references(&keyed(1, second).0), 0);
        assert_eq!(m.references(&keyed(1, first).0), 1);
        let report = m.report();
        assert_eq!(report.interfaces[0].sockets.len(), 1);
        assert_eq!(report.interfaces[0].join_failures[0].error, text);
    }
}
