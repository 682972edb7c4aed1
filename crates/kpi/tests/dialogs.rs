//! Dialog tracking across transport connections: SIP over TCP sends an in-dialog request on a
//! new connection when the old one is gone, so the BYE shares no socket address with the
//! INVITE. The session must still be found (SDT, SDD, completed sessions).

use std::net::SocketAddr;

use kpi::{Kpi, KpiConfig, SipEvent};

struct Leg<'a> {
    kpi: &'a Kpi,
    call_id: &'a str,
}

impl Leg<'_> {
    #[allow(clippy::too_many_arguments)]
    fn msg(
        &self,
        t_ms: i64,
        src: &str,
        dst: &str,
        method: Option<&str>,
        status: Option<u16>,
        cseq: (u32, &str),
        branch: &str,
        to_tag: Option<&str>,
    ) {
        let t = 1_700_000_000_000_000 + t_ms * 1000;
        self.kpi.observe_sip(&SipEvent {
            time_us: t,
            received_us: t,
            node: "sbc",
            src: src.parse::<SocketAddr>().expect("addr"),
            dst: dst.parse::<SocketAddr>().expect("addr"),
            method,
            status,
            call_id: self.call_id,
            cseq_num: cseq.0,
            cseq_method: cseq.1,
            via_branch: Some(branch),
            to_tag,
        });
    }

    /// BYE from `src` to `dst` at `t_ms`, answered 200 two milliseconds later.
    fn bye_answered(&self, t_ms: i64, src: &str, dst: &str) {
        let cseq = (1, "BYE");
        self.msg(
            t_ms,
            src,
            dst,
            Some("BYE"),
            None,
            cseq,
            "z9hG4bK-b",
            Some("f"),
        );
        self.msg(
            t_ms + 2,
            dst,
            src,
            None,
            Some(200),
            cseq,
            "z9hG4bK-b",
            Some("f"),
        );
    }

    /// INVITE from `caller` (ephemeral port) to `callee`:5060 over TCP, 180, 200, ACK.
    fn answered_call(&self, caller: &str, callee: &str) {
        let inv = Some("INVITE");
        self.msg(
            0,
            caller,
            callee,
            inv,
            None,
            (1, "INVITE"),
            "z9hG4bK-i",
            None,
        );
        self.msg(
            20,
            callee,
            caller,
            None,
            Some(180),
            (1, "INVITE"),
            "z9hG4bK-i",
            Some("t"),
        );
        self.msg(
            1000,
            callee,
            caller,
            None,
            Some(200),
            (1, "INVITE"),
            "z9hG4bK-i",
            Some("t"),
        );
        self.msg(
            1010,
            caller,
            callee,
            Some("ACK"),
            None,
            (1, "ACK"),
            "z9hG4bK-a",
            Some("t"),
        );
    }
}

fn summary(kpi: &Kpi) -> (u64, u64, u64) {
    kpi.tick(1_700_000_000_000_000 + 3_600_000_000);
    let snap = kpi.snapshot(Some(86_400));
    let scope = snap
        .scopes
        .iter()
        .find(|s| s.node == "sbc" && s.target == "any")
        .expect("scope");
    let w = &scope.window;
    (w.session_attempts, w.sessions_completed, w.sessions_ended)
}

fn rendered_count(kpi: &Kpi, name: &str) -> f64 {
    let mut text = String::new();
    kpi.tick(1_700_000_000_000_000 + 3_600_000_000);
    kpi.render_prometheus(&mut text);
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains("target=\"any\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn callee_bye_on_a_new_tcp_connection_ends_the_dialog() {
    let kpi = Kpi::new(KpiConfig::default()).expect("kpi");
    let leg = Leg {
        kpi: &kpi,
        call_id: "tcp-call-1",
    };
    leg.answered_call("10.0.0.1:40001", "10.0.0.2:5060");
    // The callee hangs up over a new connection: ephemeral port to the caller's 5060.
    leg.bye_answered(31_000, "10.0.0.2:41007", "10.0.0.1:5060");
    assert_eq!(
        summary(&kpi),
        (1, 1, 1),
        "one attempt, completed by its BYE"
    );
    assert_eq!(rendered_count(&kpi, "hepstack_kpi_sdt_seconds_count"), 1.0);
    assert_eq!(rendered_count(&kpi, "hepstack_kpi_sdd_seconds_count"), 1.0);
    assert_eq!(
        kpi.tracked(),
        (0, 0, 0),
        "the session is closed, not left to expire"
    );
    assert_eq!(kpi.counters().dialogs_expired, 0);
}

#[test]
fn legs_between_the_same_hosts_are_not_guessed() {
    // Two legs of one Call-ID between the same two hosts (a proxy on 10.0.0.2 forwarding back
    // to a second UA on 10.0.0.1): a BYE on yet another connection could belong to either, so
    // neither is closed by it; both end by idle timeout.
    let kpi = Kpi::new(KpiConfig::default()).expect("kpi");
    let leg = Leg {
        kpi: &kpi,
        call_id: "tcp-call-2",
    };
    leg.answered_call("10.0.0.1:40001", "10.0.0.2:5060");
    leg.answered_call("10.0.0.2:40500", "10.0.0.1:5070");
    leg.bye_answered(31_000, "10.0.0.2:41007", "10.0.0.1:5060");
    assert_eq!(rendered_count(&kpi, "hepstack_kpi_sdt_seconds_count"), 0.0);
    assert_eq!(kpi.tracked().1, 2, "both sessions still open");
}

#[test]
fn bye_on_the_same_connection_still_matches_exactly() {
    let kpi = Kpi::new(KpiConfig::default()).expect("kpi");
    let leg = Leg {
        kpi: &kpi,
        call_id: "tcp-call-3",
    };
    leg.answered_call("10.0.0.1:40001", "10.0.0.2:5060");
    leg.bye_answered(5_000, "10.0.0.2:5060", "10.0.0.1:40001");
    assert_eq!(summary(&kpi), (1, 1, 1));
    assert_eq!(kpi.tracked(), (0, 0, 0));
}
