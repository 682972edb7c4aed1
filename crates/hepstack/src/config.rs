//! `hepstack serve` configuration: one TOML document made of the library crates' config
//! sections, layered as DESIGN.md fixes it: defaults < TOML file < `HEPSTACK_*` environment <
//! command-line flags.
//!
//! Layering works on TOML values, then the result is deserialized once into [`Config`] (every
//! section is `deny_unknown_fields`), so a misspelt key or a bad value in any layer is an error
//! at start that names the key, never a silent default.
//!
//! Environment: the flags' own variables (`HEPSTACK_HEP_UDP`, `HEPSTACK_HTTP`, …, see
//! `hepstack serve --help`) and, for every other key, `HEPSTACK_<SECTION>__<KEY>` with `__`
//! between path segments: `HEPSTACK_HEP__WRITER__BATCH_SIZE=5000`,
//! `HEPSTACK_HEP__PIPELINE__RULES__DISCARD_METHODS='["OPTIONS"]'`. Values are read as TOML
//! (numbers, booleans, arrays) and fall back to a plain string.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The commented default configuration printed by `hepstack config default`. A test checks
/// that it parses into exactly [`Config::default`] and mentions every key.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("default-config.toml");

/// Everything `hepstack serve` can be told.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory for everything hepstack keeps on disk: the embedded store's partitions
    /// (`<data_dir>/store`) and the spool (`<data_dir>/spool`) unless those are set explicitly.
    pub data_dir: PathBuf,
    /// Where messages are stored.
    pub store: StoreSection,
    /// HEP ingest: listeners, pipeline, writer and spool.
    pub hep: collector::CollectorConfig,
    /// The HTTP server (API and UI).
    pub http: HttpSection,
    /// Web API behaviour: sessions, paging.
    pub web: web::WebConfig,
    /// The Prometheus metrics endpoint.
    pub metrics: MetricsSection,
    /// RFC 6076 KPIs, SIP counters and QoS metrics (docs/kpi.md).
    pub kpi: kpi::KpiConfig,
    /// Loki push of chosen HEP types (docs/kpi.md).
    pub loki: collector::loki::LokiConfig,
    /// HEP mirroring: relay rules applied to a copy of every received packet (docs/relay.md);
    /// off while it has no rules.
    pub forward: relay::RoutingConfig,
    /// Logging.
    pub log: LogSection,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./hepstack-data"),
            store: StoreSection::default(),
            hep: collector::CollectorConfig::default(),
            http: HttpSection::default(),
            web: web::WebConfig::default(),
            metrics: MetricsSection::default(),
            kpi: kpi::KpiConfig::default(),
            loki: collector::loki::LokiConfig::default(),
            forward: relay::RoutingConfig::default(),
            log: LogSection::default(),
        }
    }
}

/// Store selection.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// `sqlite` for the embedded store under `data_dir` (the default), or a
    /// `postgres://user@host/db` URL for PostgreSQL in the HOMER 7 schema, or a
    /// `clickhouse://user:password@host:8123/db[?cluster=NAME]` URL for ClickHouse.
    pub url: String,
    /// Embedded SQLite store settings (partitions, retention, compression).
    pub sqlite: store::sqlite::SqliteConfig,
    /// PostgreSQL settings (HOMER 7 layout), used when `url` is a postgres:// URL.
    pub postgres: store::postgres::PgConfig,
    /// ClickHouse settings, used when `url` is a clickhouse:// (or clickhouses://) URL.
    pub clickhouse: store::clickhouse::ChConfig,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            url: "sqlite".into(),
            sqlite: store::sqlite::SqliteConfig::default(),
            postgres: store::postgres::PgConfig::default(),
            clickhouse: store::clickhouse::ChConfig::default(),
        }
    }
}

/// HTTP listener.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// Address of the UI and `/api/v1`; empty string disables it.
    pub listen: String,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            listen: "0.0.0.0:9080".into(),
        }
    }
}

/// Metrics listener.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Address serving `GET /metrics` (Prometheus text format); empty string disables it.
    pub listen: String,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            listen: "0.0.0.0:9096".into(),
        }
    }
}

/// Logging.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// Filter in `tracing` syntax (`info`, `collector=debug,info`); `RUST_LOG` overrides it.
    pub level: String,
    /// `text` (one human-readable line per event) or `json` (one JSON object per line, for a
    /// log shipper). Default text.
    pub format: LogFormat,
    /// ANSI colour in text logs: `auto` (only when standard error is a terminal and `NO_COLOR`
    /// is not set), `always` or `never`. JSON logs are never coloured. Default auto.
    pub color: LogColor,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: "info".into(),
            format: LogFormat::Text,
            color: LogColor::Auto,
        }
    }
}

/// The shape of log lines.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// When text logs carry ANSI colour codes.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogColor {
    /// Only on a terminal, and not when `NO_COLOR` is set.
    #[default]
    Auto,
    /// Always, also into files and pipes.
    Always,
    /// Never.
    Never,
}

impl LogSection {
    /// Whether log lines carry ANSI colour codes, given whether standard error is a terminal
    /// and whether `NO_COLOR` is set to a non-empty value (<https://no-color.org>).
    pub fn colored(&self, stderr_is_terminal: bool, no_color: bool) -> bool {
        match (self.format, self.color) {
            (LogFormat::Json, _) | (LogFormat::Text, LogColor::Never) => false,
            (LogFormat::Text, LogColor::Always) => true,
            (LogFormat::Text, LogColor::Auto) => stderr_is_terminal && !no_color,
        }
    }
}

/// Values given as flags (or their `HEPSTACK_*` variables, which clap reads for them).
#[derive(Clone, Debug, Default)]
pub struct FlagOverrides {
    /// `--hep-udp`: UDP listen addresses (empty list element `off` disables).
    pub hep_udp: Option<Vec<String>>,
    /// `--hep-tcp`.
    pub hep_tcp: Option<Vec<String>>,
    /// `--hep-tls`.
    pub hep_tls: Option<Vec<String>>,
    /// `--http`.
    pub http: Option<String>,
    /// `--metrics`.
    pub metrics: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--store`.
    pub store: Option<String>,
    /// `--log-level`.
    pub log_level: Option<String>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
    /// `--log-color`.
    pub log_color: Option<LogColor>,
}

/// Variables that look like `HEPSTACK_*` but are not configuration keys: the flags' own
/// variables (clap reads those) and the process-level ones.
const NON_CONFIG_VARS: &[&str] = &[
    "HEPSTACK_CONFIG",
    "HEPSTACK_HEP_UDP",
    "HEPSTACK_HEP_TCP",
    "HEPSTACK_HEP_TLS",
    "HEPSTACK_HTTP",
    "HEPSTACK_METRICS",
    "HEPSTACK_DATA_DIR",
    "HEPSTACK_STORE",
    "HEPSTACK_ADMIN_PASSWORD",
];

/// Builds the configuration from the layers. `env` is the process environment (passed in so
/// tests need not mutate the real one).
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    flags: &FlagOverrides,
) -> Result<Config> {
    let mut doc = toml::Table::try_from(Config::default()).context("serializing defaults")?;
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        let table: toml::Table =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        merge(&mut doc, table);
    }
    let mut env: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("HEPSTACK_") && k.contains("__"))
        .filter(|(k, _)| !NON_CONFIG_VARS.contains(&k.as_str()))
        .collect();
    env.sort();
    for (key, value) in env {
        let path: Vec<String> = key["HEPSTACK_".len()..]
            .split("__")
            .map(|segment| segment.to_ascii_lowercase())
            .collect();
        if path.iter().any(String::is_empty) {
            bail!("environment variable {key}: empty path segment");
        }
        set_path(&mut doc, &path, parse_env_value(&value))
            .with_context(|| format!("environment variable {key}"))?;
    }
    apply_flags(&mut doc, flags)?;
    let config: Config = Config::deserialize(toml::Value::Table(doc))
        .map_err(|err| anyhow::anyhow!("invalid configuration: {err}"))?;
    config.validate()?;
    Ok(config)
}

fn apply_flags(doc: &mut toml::Table, flags: &FlagOverrides) -> Result<()> {
    let addrs = |list: &Vec<String>| -> toml::Value {
        toml::Value::Array(
            list.iter()
                .flat_map(|a| a.split(','))
                .map(str::trim)
                .filter(|a| !a.is_empty() && *a != "off")
                .map(|a| toml::Value::String(a.to_string()))
                .collect(),
        )
    };
    let text = |s: &str| toml::Value::String(if s == "off" { String::new() } else { s.into() });
    if let Some(list) = &flags.hep_udp {
        set_path(doc, &["hep", "udp", "addresses"], addrs(list))?;
    }
    if let Some(list) = &flags.hep_tcp {
        set_path(doc, &["hep", "tcp", "addresses"], addrs(list))?;
    }
    if let Some(list) = &flags.hep_tls {
        set_path(doc, &["hep", "tls", "addresses"], addrs(list))?;
    }
    if let Some(addr) = &flags.http {
        set_path(doc, &["http", "listen"], text(addr))?;
    }
    if let Some(addr) = &flags.metrics {
        set_path(doc, &["metrics", "listen"], text(addr))?;
    }
    if let Some(dir) = &flags.data_dir {
        set_path(
            doc,
            &["data_dir"],
            toml::Value::String(dir.display().to_string()),
        )?;
    }
    if let Some(url) = &flags.store {
        set_path(doc, &["store", "url"], toml::Value::String(url.clone()))?;
    }
    if let Some(level) = &flags.log_level {
        set_path(doc, &["log", "level"], toml::Value::String(level.clone()))?;
    }
    if let Some(format) = flags.log_format {
        set_path(doc, &["log", "format"], toml::Value::try_from(format)?)?;
    }
    if let Some(color) = flags.log_color {
        set_path(doc, &["log", "color"], toml::Value::try_from(color)?)?;
    }
    Ok(())
}

impl Config {
    /// Checks what serde cannot: addresses parse, the store URL is one we know.
    pub fn validate(&self) -> Result<()> {
        for (what, addr) in [
            ("http.listen", &self.http.listen),
            ("metrics.listen", &self.metrics.listen),
        ] {
            if !addr.is_empty() {
                addr.parse::<SocketAddr>().with_context(|| {
                    format!("{what} = {addr:?} is not an address like 0.0.0.0:9080")
                })?;
            }
        }
        let url = self.store.url.as_str();
        if url != "sqlite"
            && !url.starts_with("postgres://")
            && !url.starts_with("postgresql://")
            && !is_clickhouse_url(url)
        {
            bail!("store.url = {url:?}: expected \"sqlite\", a postgres:// or a clickhouse:// URL");
        }
        self.kpi.validate().context("[kpi]")?;
        relay::Plan::compile(&self.forward).context("[forward]")?;
        if !self.hep.tls.addresses.is_empty()
            && (self.hep.tls.cert_file.is_none() || self.hep.tls.key_file.is_none())
        {
            bail!("hep.tls.addresses is set: hep.tls.cert_file and hep.tls.key_file are required");
        }
        Ok(())
    }

    /// The embedded store's directory.
    pub fn store_dir(&self) -> PathBuf {
        self.data_dir.join("store")
    }
}

/// Deep-merges `over` into `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Sets `path` in `doc`, creating intermediate tables. Unknown final keys are left for the
/// typed deserialization to reject with its own message.
fn set_path<S: AsRef<str>>(doc: &mut toml::Table, path: &[S], value: toml::Value) -> Result<()> {
    let Some((last, parents)) = path.split_last() else {
        bail!("empty key")
    };
    let mut table = doc;
    for segment in parents {
        let entry = table
            .entry(segment.as_ref().to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = match entry {
            toml::Value::Table(t) => t,
            _ => bail!("{} is a value, not a section", segment.as_ref()),
        };
    }
    table.insert(last.as_ref().to_string(), value);
    Ok(())
}

/// An environment value as TOML (`5000`, `true`, `["OPTIONS"]`), else as a plain string.
fn parse_env_value(raw: &str) -> toml::Value {
    match format!("v = {raw}").parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.into()),
    }
}

/// Whether a store URL names ClickHouse (`clickhouse://`, `clickhouses://`, `http(s)://`).
pub fn is_clickhouse_url(url: &str) -> bool {
    ["clickhouse://", "clickhouses://", "http://", "https://"]
        .iter()
        .any(|p| url.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    #[test]
    fn the_printed_default_config_is_the_default() {
        let parsed: Config = toml::from_str(DEFAULT_CONFIG_TOML).expect("default config parses");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn the_printed_default_config_mentions_every_key() {
        fn keys(prefix: &str, t: &toml::Table, out: &mut Vec<String>) {
            for (k, v) in t {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match v {
                    toml::Value::Table(inner) if !inner.is_empty() => keys(&path, inner, out),
                    _ => out.push(path),
                }
            }
        }
        let default = toml::Table::try_from(Config::default()).expect("serialize");
        let mut expected = Vec::new();
        keys("", &default, &mut expected);
        // Keys whose default is "unset" (None) are not serialized; the file shows them commented.
        let text = DEFAULT_CONFIG_TOML;
        for key in expected {
            let leaf = key.rsplit('.').next().unwrap_or(&key);
            let section = format!("[{key}]");
            assert!(
                text.lines().any(
                    |l| l.trim_start().starts_with(&format!("{leaf} =")) || l.trim() == section
                ),
                "default-config.toml lacks {key}"
            );
        }
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("hepstack.toml");
        std::fs::write(
            &file,
            "data_dir = \"/from/file\"\n[http]\nlisten = \"127.0.0.1:1000\"\n[hep.writer]\nbatch_size = 111\n",
        )
        .expect("write");
        let env = vec![
            (
                "HEPSTACK_HEP__WRITER__BATCH_SIZE".to_string(),
                "222".to_string(),
            ),
            (
                "HEPSTACK_DATA_DIR".to_string(),
                "/ignored/handled/by/clap".to_string(),
            ),
            (
                "HEPSTACK_ADMIN_PASSWORD".to_string(),
                "not config".to_string(),
            ),
            ("PATH".to_string(), "/bin".to_string()),
        ];
        let flags = FlagOverrides {
            http: Some("127.0.0.1:3000".into()),
            ..FlagOverrides::default()
        };
        let config = load(Some(&file), env, &flags).expect("load");
        assert_eq!(
            config.data_dir,
            PathBuf::from("/from/file"),
            "file beats default"
        );
        assert_eq!(config.hep.writer.batch_size, 222, "env beats file");
        assert_eq!(config.http.listen, "127.0.0.1:3000", "flag beats file");
    }

    #[test]
    fn env_values_are_typed() {
        let env = vec![(
            "HEPSTACK_HEP__PIPELINE__RULES__DISCARD_METHODS".to_string(),
            "[\"OPTIONS\", \"NOTIFY\"]".to_string(),
        )];
        let config = load(None, env, &FlagOverrides::default()).expect("load");
        assert_eq!(
            config.hep.pipeline.rules.discard_methods,
            vec!["OPTIONS", "NOTIFY"]
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "[hep.writer]\nbatch_sise = 10\n").expect("write");
        let err = load(Some(&file), no_env(), &FlagOverrides::default()).expect_err("typo");
        assert!(format!("{err:#}").contains("batch_sise"), "{err:#}");

        let env = vec![(
            "HEPSTACK_HEP__WRITER__BATCH_SIZE".to_string(),
            "lots".to_string(),
        )];
        let err = load(None, env, &FlagOverrides::default()).expect_err("bad value");
        assert!(
            format!("{err:#}").contains("batch_size") || format!("{err:#}").contains("invalid"),
            "{err:#}"
        );

        let env = vec![("HEPSTACK_NOPE__KEY".to_string(), "1".to_string())];
        assert!(
            load(None, env, &FlagOverrides::default()).is_err(),
            "unknown env key"
        );

        let flags = FlagOverrides {
            http: Some("not-an-address".into()),
            ..FlagOverrides::default()
        };
        assert!(load(None, no_env(), &flags).is_err());

        let flags = FlagOverrides {
            store: Some("mysql://x".into()),
            ..FlagOverrides::default()
        };
        assert!(load(None, no_env(), &flags).is_err());
    }

    #[test]
    fn flags_set_listeners_and_off_disables() {
        let flags = FlagOverrides {
            hep_udp: Some(vec!["127.0.0.1:9999".into()]),
            hep_tcp: Some(vec!["off".into()]),
            metrics: Some("off".into()),
            ..FlagOverrides::default()
        };
        let config = load(None, no_env(), &flags).expect("load");
        assert_eq!(
            config.hep.udp.addresses,
            vec!["127.0.0.1:9999".parse::<SocketAddr>().expect("addr")]
        );
        assert!(config.hep.tcp.addresses.is_empty());
        assert!(config.metrics.listen.is_empty());
    }

    #[test]
    fn log_settings_layer_like_every_other_key() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("hepstack.toml");
        std::fs::write(
            &file,
            "[log]\nformat = \"json\"\ncolor = \"never\"\nlevel = \"warn\"\n",
        )
        .expect("write");
        let config = load(Some(&file), no_env(), &FlagOverrides::default()).expect("load");
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.log.color, LogColor::Never);
        assert_eq!(config.log.level, "warn");

        let env = vec![("HEPSTACK_LOG__COLOR".to_string(), "always".to_string())];
        let flags = FlagOverrides {
            log_format: Some(LogFormat::Text),
            log_level: Some("debug".into()),
            ..FlagOverrides::default()
        };
        let config = load(Some(&file), env, &flags).expect("load");
        assert_eq!(config.log.color, LogColor::Always, "env beats file");
        assert_eq!(config.log.format, LogFormat::Text, "flag beats file");
        assert_eq!(config.log.level, "debug", "flag beats file");

        let env = vec![("HEPSTACK_LOG__FORMAT".to_string(), "xml".to_string())];
        let err = load(None, env, &FlagOverrides::default()).expect_err("bad format");
        assert!(format!("{err:#}").contains("xml"), "{err:#}");
    }

    #[test]
    fn colour_only_on_a_terminal_unless_told() {
        let log = |format, color| LogSection {
            format,
            color,
            ..LogSection::default()
        };
        let auto = log(LogFormat::Text, LogColor::Auto);
        assert!(auto.colored(true, false));
        assert!(
            !auto.colored(false, false),
            "a file or pipe gets no ANSI codes"
        );
        assert!(!auto.colored(true, true), "NO_COLOR");
        assert!(log(LogFormat::Text, LogColor::Always).colored(false, true));
        assert!(!log(LogFormat::Text, LogColor::Never).colored(true, false));
        assert!(!log(LogFormat::Json, LogColor::Always).colored(true, false));
    }
}
