//! The DNS decoder against tshark on a SIP-flavoured response carrying every typed record
//! (tests/data/dns-tshark-expected.json, produced by tests/data/regen-dns-tshark.sh).

use payload::dns::{self, RData};
use serde_json::Value;

fn fixture() -> (Vec<u8>, Value) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/dns-tshark-expected.json"
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("fixture present"))
        .expect("fixture is JSON");
    let hex = v["message_hex"].as_str().expect("hex").to_owned();
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digit"))
        .collect();
    (bytes, v["tshark"].clone())
}

fn strings(t: &Value, field: &str) -> Vec<String> {
    t[field]
        .as_array()
        .unwrap_or_else(|| panic!("tshark field {field} missing"))
        .iter()
        .map(|s| s.as_str().expect("string").to_owned())
        .collect()
}

fn numbers(t: &Value, field: &str) -> Vec<u64> {
    strings(t, field)
        .iter()
        .map(|s| match s.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).expect("hex number"),
            None => s.parse().expect("number"),
        })
        .collect()
}

#[test]
fn decodes_like_tshark() {
    let (bytes, t) = fixture();
    let msg = dns::parse(&bytes).expect("decodes");
    assert_eq!(u64::from(msg.id), numbers(&t, "dns.id")[0]);
    assert!(msg.flags.qr && msg.flags.aa && msg.flags.ra);
    assert_eq!(u64::from(msg.rcode), numbers(&t, "dns.flags.rcode")[0]);
    assert_eq!(
        u64::from(msg.counts.answers),
        numbers(&t, "dns.count.answers")[0]
    );
    assert_eq!(
        msg.questions.len() as u64,
        numbers(&t, "dns.count.queries")[0]
    );
    assert_eq!(
        msg.authorities.len() as u64,
        numbers(&t, "dns.count.auth_rr")[0]
    );
    assert_eq!(
        msg.additionals.len() as u64,
        numbers(&t, "dns.count.add_rr")[0]
    );
    assert_eq!(msg.questions[0].name, strings(&t, "dns.qry.name")[0]);
    assert_eq!(
        u64::from(msg.questions[0].qtype),
        numbers(&t, "dns.qry.type")[0]
    );

    let records: Vec<_> = msg
        .answers
        .iter()
        .chain(&msg.authorities)
        .chain(&msg.additionals)
        .collect();
    let types: Vec<u64> = records.iter().map(|r| u64::from(r.rtype)).collect();
    assert_eq!(types, numbers(&t, "dns.resp.type"));
    // tshark files SRV owner names under dns.srv.* and shows the root as "<Root>".
    let names: Vec<String> = records
        .iter()
        .filter(|r| r.rtype != 33)
        .map(|r| {
            if r.name == "." {
                "<Root>".to_owned()
            } else {
                r.name.clone()
            }
        })
        .collect();
    assert_eq!(names, strings(&t, "dns.resp.name"));
    // tshark gives no TTL for the OPT pseudo-record.
    let ttls: Vec<u64> = records
        .iter()
        .filter(|r| r.rtype != 41)
        .map(|r| u64::from(r.ttl))
        .collect();
    assert_eq!(ttls, numbers(&t, "dns.resp.ttl"));

    let mut naptr_seen = 0;
    for r in &records {
        match &r.data {
            RData::A(a) => assert_eq!(a.to_string(), strings(&t, "dns.a")[0]),
            RData::Aaaa(a) => assert_eq!(a.to_string(), strings(&t, "dns.aaaa")[0]),
            RData::Name(n) => match r.rtype {
                5 => assert_eq!(n, &strings(&t, "dns.cname")[0]),
                12 => assert_eq!(n, &strings(&t, "dns.ptr.domain_name")[0]),
                other => panic!("unexpected name record type {other}"),
            },
            RData::Mx {
                preference,
                exchange,
            } => {
                assert_eq!(u64::from(*preference), numbers(&t, "dns.mx.preference")[0]);
                assert_eq!(exchange, &strings(&t, "dns.mx.mail_exchange")[0]);
            }
            RData::Txt(texts) => assert_eq!(texts, &strings(&t, "dns.txt")),
            RData::Srv {
                priority,
                weight,
                port,
                target,
            } => {
                assert_eq!(u64::from(*priority), numbers(&t, "dns.srv.priority")[0]);
                assert_eq!(u64::from(*weight), numbers(&t, "dns.srv.weight")[0]);
                assert_eq!(u64::from(*port), numbers(&t, "dns.srv.port")[0]);
                assert_eq!(target, &strings(&t, "dns.srv.target")[0]);
            }
            RData::Naptr {
                order,
                preference,
                flags,
                services,
                regexp,
                replacement,
            } => {
                let i = naptr_seen;
                naptr_seen += 1;
                assert_eq!(u64::from(*order), numbers(&t, "dns.naptr.order")[i]);
                assert_eq!(
                    u64::from(*preference),
                    numbers(&t, "dns.naptr.preference")[i]
                );
                assert_eq!(flags, &strings(&t, "dns.naptr.flags")[i]);
                assert_eq!(services, &strings(&t, "dns.naptr.service")[i]);
                assert_eq!(regexp, &strings(&t, "dns.naptr.regex")[i]);
                assert_eq!(replacement, &strings(&t, "dns.naptr.replacement")[i]);
            }
            RData::Soa {
                mname,
                rname,
                serial,
                refresh,
                retry,
                expire,
                minimum,
            } => {
                assert_eq!(mname, &strings(&t, "dns.soa.mname")[0]);
                assert_eq!(rname, &strings(&t, "dns.soa.rname")[0]);
                assert_eq!(u64::from(*serial), numbers(&t, "dns.soa.serial_number")[0]);
                assert_eq!(
                    u64::from(*refresh),
                    numbers(&t, "dns.soa.refresh_interval")[0]
                );
                assert_eq!(u64::from(*retry), numbers(&t, "dns.soa.retry_interval")[0]);
                assert_eq!(u64::from(*expire), numbers(&t, "dns.soa.expire_limit")[0]);
                assert_eq!(u64::from(*minimum), numbers(&t, "dns.soa.minimum_ttl")[0]);
            }
            RData::Raw(bytes) => match r.rtype {
                65280 => assert_eq!(bytes, &[1, 2, 3]),
                41 => {
                    assert!(bytes.is_empty());
                    assert_eq!(
                        u64::from(r.class),
                        numbers(&t, "dns.rr.udp_payload_size")[0]
                    );
                }
                other => panic!("type {other} unexpectedly raw"),
            },
        }
    }
    assert_eq!(naptr_seen, 2);
}

#[test]
fn json_form_names_types() {
    let (bytes, _) = fixture();
    let v = serde_json::to_value(payload::parse(53, &bytes)).expect("serializes");
    assert_eq!(v["kind"], "dns");
    let m = &v["message"];
    assert_eq!(m["questions"][0]["type"], "NAPTR");
    assert_eq!(m["answers"][0]["data"]["services"], "SIP+D2U");
    assert_eq!(m["answers"][2]["type"], "SRV");
    assert_eq!(m["answers"][4]["data"], "2001:db8::10");
    assert_eq!(m["authorities"][0]["type"], "SOA");
    assert_eq!(m["additionals"][0]["type"], "TYPE65280");
    assert_eq!(m["additionals"][0]["data"], "010203");
    assert_eq!(m["additionals"][1]["type"], "OPT");
    assert_eq!(m["flags"]["aa"], true);
}
