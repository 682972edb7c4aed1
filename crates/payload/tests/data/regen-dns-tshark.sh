#!/bin/sh
# Regenerates dns-tshark-expected.json (needs python3, text2pcap and tshark): a DNS response built here (the samples hold no DNS) with
# every record type the decoder types — NAPTR, SRV, A, AAAA, CNAME, MX, TXT, PTR, SOA, plus an
# unknown type and an EDNS OPT record, names compressed — and the values tshark (Wireshark 4.0.17)
# decodes from it. The integration test `dns_tshark` compares this crate's decoder against them.
set -eu
cd "$(dirname "$0")"
python3 - > /tmp/dns-message.hex <<'PY'
import struct
names = {}
def name(msg, n):
    out = b""
    labels = n.split(".") if n else []
    for i in range(len(labels)):
        suffix = ".".join(labels[i:])
        if suffix in names:
            return out + struct.pack(">H", 0xC000 | names[suffix])
        if len(msg) + len(out) < 0x3FFF:
            names[suffix] = len(msg) + len(out)
        out += bytes([len(labels[i])]) + labels[i].encode()
    return out + b"\0"
def cs(s):
    return bytes([len(s)]) + s.encode()
msg = struct.pack(">HHHHHH", 0xBEEF, 0x8580, 1, 9, 1, 2)
msg += name(msg, "example.com") + struct.pack(">HH", 35, 1)
answers = [
    ("example.com", 35, 300, lambda m: (p := struct.pack(">HH", 10, 50) + cs("s") + cs("SIP+D2U") + cs("")) + name(m + p, "_sip._udp.example.com")),
    ("example.com", 35, 300, lambda m: (p := struct.pack(">HH", 20, 50) + cs("s") + cs("SIPS+D2T") + cs("")) + name(m + p, "_sips._tcp.example.com")),
    ("_sip._udp.example.com", 33, 60, lambda m: (p := struct.pack(">HHH", 10, 60, 5060)) + name(m + p, "sip1.example.com")),
    ("sip1.example.com", 1, 3600, lambda m: bytes([192, 0, 2, 10])),
    ("sip1.example.com", 28, 3600, lambda m: bytes.fromhex("20010db8000000000000000000000010")),
    ("www.example.com", 5, 120, lambda m: name(m, "sip1.example.com")),
    ("example.com", 15, 600, lambda m: (p := struct.pack(">H", 5)) + name(m + p, "mail.example.com")),
    ("example.com", 16, 600, lambda m: cs("v=spf1 -all") + cs("hello world")),
    ("10.2.0.192.in-addr.arpa", 12, 86400, lambda m: name(m, "sip1.example.com")),
]
for owner, t, ttl, fn in answers:
    head = name(msg, owner) + struct.pack(">HHI", t, 1, ttl)
    base = msg + head + b"\0\0"
    rdata = fn(base)
    msg += head + struct.pack(">H", len(rdata)) + rdata
# Authority: SOA.
head = name(msg, "example.com") + struct.pack(">HHI", 6, 1, 900)
base = msg + head + b"\0\0"
rdata = name(base, "ns1.example.com")
rdata += name(base + rdata, "hostmaster.example.com")
rdata += struct.pack(">IIIII", 2024010101, 7200, 3600, 1209600, 300)
msg += head + struct.pack(">H", len(rdata)) + rdata
# Additional: an unknown type (65280) and EDNS OPT.
head = name(msg, "sip1.example.com") + struct.pack(">HHI", 65280, 1, 30)
msg += head + struct.pack(">H", 3) + b"\x01\x02\x03"
msg += b"\0" + struct.pack(">HHIH", 41, 1232, 0, 0)
print(msg.hex())
PY
HEX=$(cat /tmp/dns-message.hex)
echo "$HEX" | sed 's/../& /g; s/^/000000 /' > /tmp/dns-message.txt
text2pcap -q -u 53,40000 /tmp/dns-message.txt /tmp/dns-message.pcap
tshark -r /tmp/dns-message.pcap -d udp.port==53,dns -T json \
  -e dns.id -e dns.flags.response -e dns.flags.authoritative -e dns.flags.recavail -e dns.flags.rcode \
  -e dns.count.queries -e dns.count.answers -e dns.count.auth_rr -e dns.count.add_rr \
  -e dns.qry.name -e dns.qry.type -e dns.resp.name -e dns.resp.type -e dns.resp.ttl \
  -e dns.a -e dns.aaaa -e dns.cname -e dns.ptr.domain_name -e dns.mx.preference -e dns.mx.mail_exchange \
  -e dns.txt -e dns.srv.priority -e dns.srv.weight -e dns.srv.port -e dns.srv.target \
  -e dns.naptr.order -e dns.naptr.preference -e dns.naptr.flags -e dns.naptr.service \
  -e dns.naptr.regex -e dns.naptr.replacement -e dns.soa.mname -e dns.soa.rname \
  -e dns.soa.serial_number -e dns.soa.refresh_interval -e dns.soa.retry_interval \
  -e dns.soa.expire_limit -e dns.soa.minimum_ttl -e dns.rr.udp_payload_size 2>/dev/null > /tmp/dns-tshark.json
python3 - "$HEX" > dns-tshark-expected.json <<'PY'
import json, sys
layers = json.load(open("/tmp/dns-tshark.json"))[0]["_source"]["layers"]
print(json.dumps({"message_hex": sys.argv[1], "tshark": layers}, indent=1))
PY
