//! Names of the HEP payload protocol types (chunk 0x000b).

/// Human-readable name of a HEP protocol type (chunk 0x000b), `"unknown"` for unassigned values.
///
/// The table follows the HEP3 specification and the values heplify-server and its agents use
/// (38 horaclifix, 100 LOG).
pub fn proto_type_name(proto_type: u8) -> &'static str {
    match proto_type {
        1 => "SIP",
        2 => "XMPP",
        3 => "SDP",
        4 => "RTP",
        5 => "RTCP",
        6 => "MGCP",
        7 => "MEGACO",
        8 => "M2UA",
        9 => "M3UA",
        10 => "IAX",
        11 => "H322",
        12 => "H321",
        13 => "M2PA",
        34 => "JSON MOS full report",
        35 => "JSON MOS short report (rtcpxr)",
        38 => "horaclifix",
        50 => "SIP JSON",
        53 => "DNS JSON",
        54 => "M3UA JSON (ISUP)",
        55 => "RTSP",
        56 => "DIAMETER",
        57 => "GSM MAP",
        58 => "RTCP PION",
        60 => "CDR",
        61 => "Verto",
        100 => "LOG",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::proto_type_name;

    #[test]
    fn known_and_unknown_types() {
        assert_eq!(proto_type_name(1), "SIP");
        assert_eq!(proto_type_name(5), "RTCP");
        assert_eq!(proto_type_name(35), "JSON MOS short report (rtcpxr)");
        assert_eq!(proto_type_name(100), "LOG");
        assert_eq!(proto_type_name(0), "unknown");
        assert_eq!(proto_type_name(14), "unknown");
        assert_eq!(proto_type_name(255), "unknown");
    }
}
