use super::*;
use serde::Deserialize;
use std::collections::BTreeMap;
use warden_plugins::conf::{ByteSize, Duration};

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Conf {
    listen: Listen,
    #[serde(default)]
    admin: Option<Admin>,
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(default)]
    version: Option<String>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Listen {
    http: String,
    #[serde(default)]
    https: Option<String>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Admin {
    listen: String,
    #[serde(default)]
    max_body: Option<ByteSize>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Route {
    name: String,
    host: String,
    #[serde(default = "root_prefix")]
    path_prefix: String,
    upstreams: Vec<String>,
    #[serde(default)]
    lb: Lb,
    #[serde(default)]
    health_check: Option<HealthCheck>,
    #[serde(default)]
    timeouts: Timeouts,
    #[serde(default)]
    public: bool,
    #[serde(default)]
    port: Option<u16>,
}

fn root_prefix() -> String {
    "/".into()
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Lb {
    #[default]
    RoundRobin,
    ConsistentHash {
        header: String,
    },
    Random(u8),
    Weighted(u32, u32),
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct HealthCheck {
    interval: Duration,
    path: String,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Timeouts {
    #[serde(default)]
    connect: Option<Duration>,
    #[serde(default)]
    read: Option<Duration>,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct AllDefault {
    #[serde(default)]
    debug: bool,
    #[serde(default)]
    name: Option<String>,
}

fn parse<T: DeserializeOwned>(src: &str) -> Result<T, Vec<ConfError>> {
    from_str::<T>(src, "warden.yaml").map(|(v, _)| v)
}

/// Errors as `line:column: path: message` lines, for exact comparison.
fn errors<T: DeserializeOwned + fmt::Debug>(src: &str) -> Vec<String> {
    match from_str::<T>(src, "warden.yaml") {
        Ok((v, _)) => panic!("expected errors, parsed {v:?}"),
        Err(errors) => errors
            .iter()
            .map(|e| {
                let full = e.to_string();
                full.strip_prefix("warden.yaml:")
                    .unwrap_or(&full)
                    .to_string()
            })
            .collect(),
    }
}

const VALID: &str = r#"
listen: { http: "0.0.0.0:8080", https: "0.0.0.0:8443" }
admin:
  listen: 127.0.0.1:9901
  max_body: 1MiB
version: 1.10
routes:
  - name: grafana
    host: grafana.example.com
    upstreams: ["grafana:3000", grafana-2:3000]
    lb: { consistent_hash: { header: X-User } }
    health_check: { interval: 5s, path: /api/health }
    timeouts: { connect: 2s, read: 60s }
    port: 8443
  - name: 8080
    host: status.example.com
    path_prefix: /status
    upstreams:
      - status:80
    public: true
    lb: round_robin
"#;

fn valid_conf() -> Conf {
    Conf {
        listen: Listen {
            http: "0.0.0.0:8080".into(),
            https: Some("0.0.0.0:8443".into()),
        },
        admin: Some(Admin {
            listen: "127.0.0.1:9901".into(),
            max_body: Some(ByteSize(1 << 20)),
        }),
        version: Some("1.10".into()),
        routes: vec![
            Route {
                name: "grafana".into(),
                host: "grafana.example.com".into(),
                path_prefix: "/".into(),
                upstreams: vec!["grafana:3000".into(), "grafana-2:3000".into()],
                lb: Lb::ConsistentHash {
                    header: "X-User".into(),
                },
                health_check: Some(HealthCheck {
                    interval: Duration::from_secs(5),
                    path: "/api/health".into(),
                }),
                timeouts: Timeouts {
                    connect: Some(Duration::from_secs(2)),
                    read: Some(Duration::from_secs(60)),
                },
                public: false,
                port: Some(8443),
            },
            Route {
                name: "8080".into(),
                host: "status.example.com".into(),
                path_prefix: "/status".into(),
                upstreams: vec!["status:80".into()],
                lb: Lb::RoundRobin,
                health_check: None,
                timeouts: Timeouts::default(),
                public: true,
                port: None,
            },
        ],
    }
}

#[test]
fn valid_conf_parses() {
    assert_eq!(parse::<Conf>(VALID).unwrap(), valid_conf());
}

#[test]
fn valid_files_read_like_their_json_equivalents() {
    let json = r#"{
        "listen": { "http": "0.0.0.0:8080", "https": "0.0.0.0:8443" },
        "admin": { "listen": "127.0.0.1:9901", "max_body": "1MiB" },
        "version": "1.10",
        "routes": [
          { "name": "grafana", "host": "grafana.example.com",
            "upstreams": ["grafana:3000", "grafana-2:3000"],
            "lb": { "consistent_hash": { "header": "X-User" } },
            "health_check": { "interval": "5s", "path": "/api/health" },
            "timeouts": { "connect": "2s", "read": "60s" }, "port": 8443 },
          { "name": "8080", "host": "status.example.com", "path_prefix": "/status",
            "upstreams": ["status:80"], "public": true, "lb": "round_robin" }
        ]
    }"#;
    let from_json: Conf = serde_json::from_str(json).unwrap();
    assert_eq!(parse::<Conf>(VALID).unwrap(), from_json);

    // deserialize_any follows the core schema like JSON's own types.
    let yaml = "a: 1\nb: -2\nc: 1.5\nd: true\ne: ~\nf: [x, \"7\", 0x10]\ng: { h: '' }\n";
    let json =
        r#"{"a": 1, "b": -2, "c": 1.5, "d": true, "e": null, "f": ["x", "7", 16], "g": {"h": ""}}"#;
    let from_yaml: serde_json::Value = parse(yaml).unwrap();
    let from_json: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(from_yaml, from_json);

    let yaml = "lb: { weighted: [3, 1] }\nsizes: [512, 1KiB]\n";
    let json = r#"{"lb": {"weighted": [3, 1]}, "sizes": [512, "1KiB"]}"#;
    #[derive(Debug, Deserialize, PartialEq)]
    struct Small {
        lb: Lb,
        sizes: Vec<ByteSize>,
    }
    let from_yaml: Small = parse(yaml).unwrap();
    assert_eq!(from_yaml, serde_json::from_str::<Small>(json).unwrap());
    assert_eq!(from_yaml.lb, Lb::Weighted(3, 1));
}

#[test]
fn display_includes_path_only_when_known() {
    let e = ConfError {
        file: "c.yaml".into(),
        line: 3,
        column: 7,
        path: "routes[0].host".into(),
        message: "expected a string, found a list".into(),
    };
    assert_eq!(
        e.to_string(),
        "c.yaml:3:7: routes[0].host: expected a string, found a list"
    );
    let e = ConfError {
        path: String::new(),
        ..e
    };
    assert_eq!(e.to_string(), "c.yaml:3:7: expected a string, found a list");
}

#[test]
fn syntax_error_is_reported_at_the_scanner_position() {
    let src = "listen:\n  http: a\n   bad: 1\n";
    assert_eq!(
        errors::<Conf>(src),
        ["3:7: mapping values are not allowed in this context"]
    );
    let src = "routes: [a, b\nlisten: x\n";
    let errs = errors::<Conf>(src);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("2:7: "), "{errs:?}");
}

#[test]
fn several_documents_are_refused() {
    assert_eq!(
        errors::<AllDefault>("debug: true\n---\ndebug: false\n"),
        ["2:1: a conf file holds a single YAML document; found a second one"]
    );
}

#[test]
fn empty_file_reads_as_an_empty_map() {
    assert_eq!(parse::<AllDefault>("").unwrap(), AllDefault::default());
    assert_eq!(
        parse::<AllDefault>("# only a comment\n").unwrap(),
        AllDefault::default()
    );
    assert_eq!(parse::<AllDefault>("---\n").unwrap(), AllDefault::default());
    assert_eq!(errors::<Conf>(""), ["1:1: missing field `listen`"]);
}

#[test]
fn scalars_read_as_strings_when_strings_are_wanted() {
    #[derive(Debug, Deserialize, PartialEq)]
    struct S {
        a: String,
        b: String,
        c: String,
        d: String,
        e: Option<String>,
        f: Option<String>,
        g: Option<String>,
    }
    let s: S = parse("a: 8080\nb: 1.10\nc: true\nd: 'x: y'\ne: ~\nf:\ng: \"null\"\n").unwrap();
    assert_eq!(
        s,
        S {
            a: "8080".into(),
            b: "1.10".into(),
            c: "true".into(),
            d: "x: y".into(),
            e: None,
            f: None,
            g: Some("null".into()),
        }
    );
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Name {
        name: String,
    }
    assert_eq!(
        errors::<Name>("name:\n"),
        ["1:1: name: expected a string, found an empty value"]
    );
}

#[test]
fn numbers_and_booleans_are_checked() {
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct S {
        port: u16,
        retries: i8,
        ratio: f64,
        on: bool,
    }
    let src = "port: abc\nretries: -129\nratio: fast\non: yes\n";
    assert_eq!(
        errors::<S>(src),
        [
            "1:7: port: expected an integer, found string `abc`",
            "2:10: retries: expected an integer from -128 to 127, found integer `-129`",
            "3:8: ratio: expected a number, found string `fast`",
            "4:5: on: expected `true` or `false`, found string `yes`",
        ]
    );
    let src = "port: \"8080\"\nretries: 70000\nratio: 2\non: 'true'\n";
    assert_eq!(
        errors::<S>(src),
        [
            "1:7: port: expected an integer, found string `8080` (quoted, so it is a string)",
            "2:10: retries: expected an integer from -128 to 127, found integer `70000`",
            "4:5: on: expected `true` or `false`, found string `true` (quoted, so it is a string)",
        ]
    );
    #[derive(Debug, Deserialize, PartialEq)]
    struct P {
        port: u16,
        big: u64,
        neg: i64,
        ratio: f32,
    }
    assert_eq!(
        parse::<P>("port: 65535\nbig: 18446744073709551615\nneg: -5\nratio: 0.5\n").unwrap(),
        P {
            port: 65535,
            big: u64::MAX,
            neg: -5,
            ratio: 0.5
        }
    );
    assert_eq!(
        errors::<P>("port: 65536\nbig: -1\nneg: 1.5\nratio: [1]\n"),
        [
            "1:7: port: expected an integer from 0 to 65535, found integer `65536`",
            "2:6: big: expected an integer from 0 to 18446744073709551615, found integer `-1`",
            "3:6: neg: expected an integer, found number `1.5`",
            "4:8: ratio: expected a number, found a list",
        ]
    );
}

#[test]
fn unknown_fields_are_reported_and_skipped() {
    let src = "\
listen:
  http: :80
  htps: :443
routes:
  - name: a
    host: a.example.com
    upstreams: [a]
    timeout: { connect: 1s }
";
    assert_eq!(
        errors::<Conf>(src),
        [
            "3:3: listen.htps: unknown field `htps`, expected one of `http`, `https` (did you mean `https`?)",
            "8:5: routes[0].timeout: unknown field `timeout`, expected one of `name`, `host`, \
             `path_prefix`, `upstreams`, `lb`, `health_check`, `timeouts`, `public`, `port` \
             (did you mean `timeouts`?)",
        ]
    );
    assert_eq!(
        errors::<Conf>("listen: { http: a }\ncolour: blue\n"),
        ["2:1: colour: unknown field `colour`, expected one of `listen`, `admin`, `routes`, `version`"]
    );
}

#[test]
fn unknown_fields_are_reported_once_across_retries() {
    let src = "\
listen: { http: a, bogus: 1 }
routes:
  - { name: a, host: h, upstreams: [u], port: x }
  - { name: b, host: h, upstreams: [u], port: y }
";
    assert_eq!(
        errors::<Conf>(src),
        [
            "1:20: listen.bogus: unknown field `bogus`, expected one of `http`, `https`",
            "3:47: routes[0].port: expected an integer, found string `x`",
            "4:47: routes[1].port: expected an integer, found string `y`",
        ]
    );
}

#[test]
fn a_typo_of_a_required_field_is_one_error() {
    let src = "\
listen: { http: a }
routes:
  - name: a
    host: h
    upstream: [u]
";
    assert_eq!(
        errors::<Conf>(src),
        [
            "5:5: routes[0].upstream: unknown field `upstream`, expected one of `name`, `host`, \
          `path_prefix`, `upstreams`, `lb`, `health_check`, `timeouts`, `public`, `port` \
          (did you mean `upstreams`?)"
        ]
    );
}

#[test]
fn missing_fields_are_reported_at_their_map() {
    let src = "\
listen: { http: a }
routes:
  - name: a
    host: h
  - name: b
    upstreams: [u]
";
    assert_eq!(
        errors::<Conf>(src),
        [
            "3:5: routes[0]: missing field `upstreams`",
            "5:5: routes[1]: missing field `host`",
        ]
    );
}

#[test]
fn custom_errors_are_placed_at_their_node() {
    let src = "\
listen: { http: a }
admin: { listen: b, max_body: 1XB }
routes:
  - name: a
    host: h
    upstreams: [u]
    health_check:
      interval: 5x
      path: /health
";
    assert_eq!(
        errors::<Conf>(src),
        [
            "2:31: admin.max_body: `1XB` is not a size such as `512`, `64KiB`, `1MiB`, `2GiB`, \
             `10kB` or `5MB`",
            "8:17: routes[0].health_check.interval: `5x` is not a duration such as `250ms`, \
             `5s`, `10m`, `12h`, `7d` or `1h30m`",
        ]
    );
    assert_eq!(
        errors::<Admin>("listen: b\nmax_body: -1\n"),
        ["2:11: max_body: a size cannot be negative"]
    );
}

#[test]
fn wrong_shapes_name_yaml_types() {
    let src = "\
listen: [a]
routes:
  - name: a
    host: { x: 1 }
    upstreams:
      a: b
";
    assert_eq!(
        errors::<Conf>(src),
        [
            "1:9: listen: expected a map, found a list",
            "4:11: routes[0].host: expected a string, found a map",
            "5:5: routes[0].upstreams: expected a list, found a map",
        ]
    );
}

#[test]
fn whole_file_and_key_shapes_are_checked() {
    assert_eq!(
        errors::<Conf>("- listen\n"),
        ["1:1: expected a map, found a list"]
    );
    let src = "? [a, b]\n: 1\nc: x\n";
    assert_eq!(
        errors::<BTreeMap<String, u8>>(src),
        [
            "1:3: a map key must be a string, found a list",
            "3:4: c: expected an integer, found string `x`",
        ]
    );
}

#[test]
fn enums_read_from_names_and_single_key_maps() {
    #[derive(Debug, Deserialize, PartialEq)]
    struct S {
        lb: Vec<Lb>,
    }
    let src = "\
lb:
  - round_robin
  - { round_robin: }
  - { random: 7 }
  - consistent_hash:
      header: X-User
  - { weighted: [1, 2] }
";
    assert_eq!(
        parse::<S>(src).unwrap().lb,
        [
            Lb::RoundRobin,
            Lb::RoundRobin,
            Lb::Random(7),
            Lb::ConsistentHash {
                header: "X-User".into()
            },
            Lb::Weighted(1, 2),
        ]
    );
    let src = "\
lb:
  - roundrobin
  - consistent_hash
  - { round_robin: 1 }
  - { random: 7, weighted: [1, 2] }
  - { consistent_hash: { headr: X } }
  - { weighted: [1, 2, 3] }
  - [round_robin]
  - { weighted: [1] }
  - { random: 300 }
  - { randm: 3 }
  - { weighted: \"1, 2\" }
";
    assert_eq!(
        errors::<S>(src),
        [
            "2:5: lb[0]: expected one of `round_robin`, `consistent_hash`, `random`, `weighted`, \
             found `roundrobin` (did you mean `round_robin`?)",
            "3:5: lb[1]: `consistent_hash` needs settings: write it as a map `consistent_hash: …`",
            "4:20: lb[2].round_robin: `round_robin` takes no settings, found integer `1`",
            "5:5: lb[3]: expected one of `round_robin`, `consistent_hash`, `random`, `weighted`, \
             alone or as the single key of a map, found a map with 2 keys",
            "6:26: lb[4].consistent_hash.headr: unknown field `headr`, expected `header` \
             (did you mean `header`?)",
            "7:17: lb[5].weighted: expected a list of 2 items, found 3 items",
            "8:5: lb[6]: expected one of `round_robin`, `consistent_hash`, `random`, `weighted`, \
             alone or as the single key of a map, found a list",
            "9:17: lb[7].weighted: expected a list of 2 items, found 1 item",
            "10:15: lb[8].random: expected an integer from 0 to 255, found integer `300`",
            "11:7: lb[9]: expected one of `round_robin`, `consistent_hash`, `random`, `weighted`, \
             found `randm` (did you mean `random`?)",
            "12:17: lb[10].weighted: expected a list of 2 items, found string `1, 2`",
        ]
    );
}

#[test]
fn untagged_enums_report_at_the_enum() {
    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(untagged)]
    enum Upstream {
        Addr(String),
        Weighted { addr: String, weight: u32 },
    }
    #[derive(Debug, Deserialize, PartialEq)]
    struct S {
        upstreams: Vec<Upstream>,
    }
    let src = "upstreams:\n  - a:80\n  - { addr: b:80, weight: 3 }\n";
    assert_eq!(
        parse::<S>(src).unwrap().upstreams,
        [
            Upstream::Addr("a:80".into()),
            Upstream::Weighted {
                addr: "b:80".into(),
                weight: 3
            }
        ]
    );
    let src = "upstreams:\n  - a:80\n  - { addr: b:80, weight: x }\n  - [c]\n";
    assert_eq!(
        errors::<S>(src),
        [
            "3:5: upstreams[1]: data did not match any variant of untagged enum Upstream",
            "4:5: upstreams[2]: data did not match any variant of untagged enum Upstream",
        ]
    );
}

#[test]
fn duplicate_keys_are_reported_at_the_second_occurrence() {
    let src = "\
listen: { http: a }
routes:
  - name: a
    host: h
    upstreams: [u]
    host: i
    port: x
";
    assert_eq!(
        errors::<Conf>(src),
        [
            "6:5: routes[0].host: duplicate key `host` (first defined at line 4)",
            "7:11: routes[0].port: expected an integer, found string `x`",
        ]
    );
    // Big maps switch to hashing; the first occurrence still wins.
    let mut src: String = (0..40).map(|i| format!("k{i}: {i}\n")).collect();
    src.push_str("k3: again\n");
    let errs = from_str::<BTreeMap<String, u32>>(&src, "m.yaml").unwrap_err();
    assert_eq!(
        errs.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["m.yaml:41:1: k3: duplicate key `k3` (first defined at line 4)"]
    );
}

#[test]
fn aliases_resolve_to_copies_of_their_anchor() {
    let src = "\
listen: { http: a }
routes:
  - &base
    name: a
    host: h
    upstreams: &ups [u1, u2]
  - name: b
    host: h2
    upstreams: *ups
";
    let conf: Conf = parse(src).unwrap();
    assert_eq!(conf.routes[1].upstreams, ["u1", "u2"]);
    assert_eq!(conf.routes[0].upstreams, ["u1", "u2"]);

    let src = "\
listen: { http: a }
routes:
  - &r { name: a, host: h, upstreams: [u], port: x }
  - *r
";
    // Both copies fail; each is reported under its own path at the anchored text.
    assert_eq!(
        errors::<Conf>(src),
        [
            "3:50: routes[0].port: expected an integer, found string `x`",
            "3:50: routes[1].port: expected an integer, found string `x`",
        ]
    );
}

#[test]
fn alias_bombs_stop_early() {
    let mut src = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    let mut prev = 'a';
    for name in 'b'..='k' {
        src.push_str(&format!(
            "{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, \
             *{prev}, *{prev}, *{prev}]\n"
        ));
        prev = name;
    }
    let errs = errors::<serde_json::Value>(&src);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].ends_with("aliases expand to too many nodes"),
        "{errs:?}"
    );
}

#[test]
fn deep_nesting_is_refused() {
    let src = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let errs = errors::<serde_json::Value>(&src);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("1:129: "), "{errs:?}");
    assert!(
        errs[0].ends_with("nesting deeper than 128 levels"),
        "{errs:?}"
    );
}

#[test]
fn merge_keys_are_ordinary_keys() {
    let src = "listen:\n  <<: { http: a }\n  http: b\n";
    assert_eq!(
        errors::<Conf>(src),
        ["2:3: listen.<<: unknown field `<<`, expected one of `http`, `https`"]
    );
}

#[test]
fn indices_stay_original_after_removals() {
    let src = "\
listen: { http: a }
routes:
  - { name: r0, host: h, upstreams: [u] }
  - { name: r1, host: [h], upstreams: [u] }
  - { name: r2, host: h, upstreams: [u] }
  - { name: r3, host: h, upstreams: [u], lb: nope }
  - { name: r4, host: h, upstreams: [u, [v]] }
";
    assert_eq!(
        errors::<Conf>(src),
        [
            "4:23: routes[1].host: expected a string, found a list",
            "6:46: routes[3].lb: expected one of `round_robin`, `consistent_hash`, `random`, \
             `weighted`, found `nope`",
            "7:41: routes[4].upstreams[1]: expected a string, found a list",
        ]
    );
}

#[test]
fn errors_inside_optional_sections_cost_no_follow_up_errors() {
    // The pruned `interval` makes `health_check` incomplete, and the pruned `health_check`
    // leaves the route without it: neither is a new problem.
    let src = "\
listen: { http: [a] }
routes:
  - name: a
    host: h
    upstreams: [u]
    health_check: { interval: 5x, path: /h }
  - name: b
    host: h
    upstreams: u
";
    assert_eq!(
        errors::<Conf>(src),
        [
            "1:17: listen.http: expected a string, found a list",
            "6:31: routes[0].health_check.interval: `5x` is not a duration such as `250ms`, \
             `5s`, `10m`, `12h`, `7d` or `1h30m`",
            "9:16: routes[1].upstreams: expected a list, found string `u`",
        ]
    );
}

#[test]
fn five_mistakes_make_five_errors() {
    let src = "\
listen:
  http: :8080
  https: [x]
admin: { listen: 127.0.0.1:9901, max_body: lots }
routes:
  - name: grafana
    host: grafana.example.com
    upstreams: [grafana:3000]
    lb: roundrobin
  - name: status
    host: status.example.com
    upstreams: [status:80]
    health_check: { interval: 5s, path: /h, timeout: 1s }
  - name: api
    upstreams: [api:80]
";
    assert_eq!(
        errors::<Conf>(src),
        [
            "3:10: listen.https: expected a string, found a list",
            "4:44: admin.max_body: `lots` is not a size such as `512`, `64KiB`, `1MiB`, \
             `2GiB`, `10kB` or `5MB`",
            "9:9: routes[0].lb: expected one of `round_robin`, `consistent_hash`, `random`, \
             `weighted`, found `roundrobin` (did you mean `round_robin`?)",
            "13:45: routes[1].health_check.timeout: unknown field `timeout`, expected one of \
             `interval`, `path`",
            "14:5: routes[2]: missing field `host`",
        ]
    );
}

#[test]
fn locate_falls_back_to_the_nearest_ancestor() {
    let (_, doc) = from_str::<Conf>(VALID, "warden.yaml").unwrap();
    let at = |p: &str| {
        let l = doc.locate(p);
        (l.line, l.column)
    };
    assert_eq!(at(""), (2, 1));
    assert_eq!(at("listen.https"), (2, 40));
    assert_eq!(at("admin"), (3, 1));
    assert_eq!(at("admin.max_body"), (5, 13));
    assert_eq!(at("routes[0].lb.consistent_hash.header"), (11, 38));
    assert_eq!(at("routes[0].upstreams[1]"), (10, 33));
    assert_eq!(at("routes[1].upstreams"), (18, 5));
    assert_eq!(at("routes[1].upstreams[0]"), (19, 9));
    // Missing nodes: the nearest existing ancestor.
    assert_eq!(at("routes[1].policy.allow[0]"), (15, 5));
    assert_eq!(at("routes[7].name"), (7, 1));
    assert_eq!(at("nothing.here"), (2, 1));

    let e = doc.error("routes[1].policy", "needs a login provider");
    assert_eq!(
        e.to_string(),
        "warden.yaml:15:5: routes[1].policy: needs a login provider"
    );
}

#[test]
fn errors_are_sorted_by_position() {
    let src = "listen: { http: a }\nroutes:\n  - { name: a, host: h, upstreams: [u], zz: 1, port: x, aa: 2 }\n";
    let errs = from_str::<Conf>(src, "f").unwrap_err();
    let positions: Vec<_> = errs.iter().map(|e| (e.line, e.column)).collect();
    let mut sorted = positions.clone();
    sorted.sort();
    assert_eq!(positions, sorted);
    assert_eq!(errs.len(), 3);
}

#[test]
fn too_many_errors_stop_the_search() {
    let mut src = String::from("listen: { http: a }\nroutes:\n");
    for i in 0..(MAX_ATTEMPTS + 10) {
        src.push_str(&format!(
            "  - {{ name: r{i}, host: h, upstreams: [u], port: x }}\n"
        ));
    }
    let errs = from_str::<Conf>(&src, "f").unwrap_err();
    assert_eq!(errs.len(), MAX_ATTEMPTS + 1);
    assert_eq!(errs[MAX_ATTEMPTS].message, "too many errors; stopping");
}

#[test]
fn ten_thousand_routes_parse() {
    let mut src = String::from("listen: { http: \":8080\" }\nroutes:\n");
    for i in 0..10_000 {
        src.push_str(&format!(
            "  - name: r{i}\n    host: r{i}.example.com\n    upstreams: [\"r{i}:80\", \"r{i}b:80\"]\n    \
             lb: {{ consistent_hash: {{ header: X-User }} }}\n    \
             health_check: {{ interval: 5s, path: /health }}\n    timeouts: {{ connect: 2s }}\n"
        ));
    }
    let start = std::time::Instant::now();
    let conf: Conf = parse(&src).unwrap();
    println!("10k routes parsed in {:?}", start.elapsed());
    assert_eq!(conf.routes.len(), 10_000);
    assert_eq!(conf.routes[9_999].name, "r9999");
    assert_eq!(conf.routes[9_999].upstreams[1], "r9999b:80");
}
