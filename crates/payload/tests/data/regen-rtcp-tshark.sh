#!/bin/sh
# Regenerates rtcp-tshark-expected.json: what tshark (Wireshark 4.0.17, Debian 12) decodes from every
# RTCP packet in the two sample captures. The integration test `rtcp_pcaps` compares this crate's
# binary RTCP parser against it. Run from this directory with the samples at $HEPSTACK_SAMPLES
# (default ../../../../../shared/samples). tshark only recognises RTCP on ports an SDP in the capture
# announced; in heplify's capture one direction (UDP port 4801) is not announced, so it is decoded
# as RTCP explicitly (every datagram on that port is RTCP).
set -eu
SAMPLES="${HEPSTACK_SAMPLES:-$(dirname "$0")/../../../../../shared/samples}"
FIELDS="-e frame.number -e rtcp.pt -e rtcp.senderssrc -e rtcp.ssrc.identifier -e rtcp.ssrc.fraction
 -e rtcp.ssrc.cum_nr -e rtcp.ssrc.ext_high -e rtcp.ssrc.jitter -e rtcp.ssrc.lsr -e rtcp.ssrc.dlsr
 -e rtcp.timestamp.ntp.msw -e rtcp.timestamp.ntp.lsw -e rtcp.timestamp.rtp -e rtcp.sender.packetcount
 -e rtcp.sender.octetcount -e rtcp.sdes.type -e rtcp.sdes.text"
for f in heplify-pcaps/rtp_rtcp_sip_ipv4_udp.pcap rtpengine-hep3-rtcp/media-and-ng.pcap; do
  # shellcheck disable=SC2086
  tshark -r "$SAMPLES/$f" -d udp.port==4801,rtcp -Y rtcp -T json $FIELDS 2>/dev/null \
    > "/tmp/rtcp-$(basename "$f").json"
done
python3 - "$SAMPLES" > "$(dirname "$0")/rtcp-tshark-expected.json" <<'PY'
import json, sys, os
out = []
for f in ["heplify-pcaps/rtp_rtcp_sip_ipv4_udp.pcap", "rtpengine-hep3-rtcp/media-and-ng.pcap"]:
    for pkt in json.load(open("/tmp/rtcp-" + os.path.basename(f) + ".json")):
        l = pkt["_source"]["layers"]
        g = lambda k: l.get(k, [])
        num = lambda s: int(s, 0)
        blocks = [dict(ssrc=num(a), fraction_lost=num(b), cumulative_lost=num(c), ext_high_seq=num(d),
                       jitter=num(e), lsr=num(f_), dlsr=num(h))
                  for a, b, c, d, e, f_, h in zip(g("rtcp.ssrc.identifier"), g("rtcp.ssrc.fraction"),
                      g("rtcp.ssrc.cum_nr"), g("rtcp.ssrc.ext_high"), g("rtcp.ssrc.jitter"),
                      g("rtcp.ssrc.lsr"), g("rtcp.ssrc.dlsr"))]
        senders = [dict(ntp_msw=num(a), ntp_lsw=num(b), rtp_timestamp=num(c), packets=num(d), octets=num(e))
                   for a, b, c, d, e in zip(g("rtcp.timestamp.ntp.msw"), g("rtcp.timestamp.ntp.lsw"),
                       g("rtcp.timestamp.rtp"), g("rtcp.sender.packetcount"), g("rtcp.sender.octetcount"))]
        sdes = [dict(type=num(t), text=x) for t, x in zip(g("rtcp.sdes.type"), g("rtcp.sdes.text"))]
        out.append(dict(file=f, frame=num(g("frame.number")[0]), packet_types=[num(x) for x in g("rtcp.pt")],
                        sender_ssrcs=[num(x) for x in g("rtcp.senderssrc")], sender_info=senders,
                        report_blocks=blocks, sdes_items=sdes))
print(json.dumps(out, indent=1))
PY
