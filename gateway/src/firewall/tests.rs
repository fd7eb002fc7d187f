//! The JSON batch, the read-back check and the `[firewall]` section through the config loader.

use std::path::Path;

use pqgate_core::config::Config;
use pqgate_core::firewall::generate;
use serde_json::{Value, json};

use super::{FirewallError, json, nft};
use crate::config;

fn ruleset_with_nat() -> pqgate_core::firewall::Ruleset {
    let mut cfg = Config::default();
    cfg.firewall.masquerade = vec!["eth0".into()];
    cfg.firewall.extra_tcp = vec![22, 2222];
    generate(&cfg).unwrap()
}

fn commands(batch: &nftables::schema::Nftables<'_>) -> Vec<Value> {
    let v = serde_json::to_value(batch).unwrap();
    v["nftables"].as_array().unwrap().clone()
}

#[test]
fn batch_replaces_the_table_whole_and_retires_a_renamed_one() {
    let rs = ruleset_with_nat();
    let cmds = commands(&json::replace_batch(&rs, Some("old")));
    let table = json!({"family": "inet", "name": "pqgate"});
    assert_eq!(cmds[0], json!({"add": {"table": table}}));
    assert_eq!(cmds[1], json!({"delete": {"table": table}}));
    assert_eq!(cmds[2], json!({"add": {"table": table}}));
    let chains = cmds
        .iter()
        .filter(|c| c["add"]["chain"].is_object())
        .count();
    let rules = cmds.iter().filter(|c| c["add"]["rule"].is_object()).count();
    assert_eq!((chains, rules), (3, rs.rule_count()));
    let old = json!({"family": "inet", "name": "old"});
    assert_eq!(
        cmds[cmds.len() - 2..],
        [
            json!({"add": {"table": old}}),
            json!({"delete": {"table": old}})
        ]
    );
    // Same name: nothing to retire.
    let same = commands(&json::replace_batch(&rs, Some("pqgate")));
    assert_eq!(same.len(), 3 + chains + rules);
}

#[test]
fn rules_encode_as_nft_lists_them() {
    let rs = ruleset_with_nat();
    let cmds = commands(&json::replace_batch(&rs, None));
    let rule_with = |comment: &str| {
        cmds.iter()
            .map(|c| &c["add"]["rule"])
            .find(|r| r["comment"] == comment)
            .unwrap_or_else(|| panic!("no rule {comment:?}"))
            .clone()
    };
    assert_eq!(
        rule_with("replies and related")["expr"],
        json!([
            {"match": {"op": "in", "left": {"ct": {"key": "state"}},
                       "right": ["established", "related"]}},
            {"accept": null}
        ])
    );
    assert_eq!(
        rule_with("extra_tcp")["expr"][0],
        json!({"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                         "right": {"set": [22, 2222]}}})
    );
    assert_eq!(
        rule_with("masquerade out of eth0")["expr"],
        json!([
            {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "eth0"}},
            {"masquerade": null}
        ])
    );
    assert_eq!(rule_with("masquerade out of eth0")["chain"], "postrouting");
}

#[test]
fn meters_and_prefixes_encode() {
    let mut cfg = Config::default();
    cfg.admin.listen = "0.0.0.0:9851".parse().unwrap();
    cfg.firewall.management = vec!["10.1.2.3/24".into(), "192.0.2.9".into()];
    cfg.firewall.new_connections_per_second = 7;
    let cmds = commands(&json::replace_batch(&generate(&cfg).unwrap(), None));
    let exprs: Vec<&Value> = cmds.iter().map(|c| &c["add"]["rule"]["expr"]).collect();
    let admin = exprs
        .iter()
        .find(|e| e[1]["match"]["right"] == 9851)
        .expect("admin rule");
    assert_eq!(
        admin[0]["match"]["right"],
        json!({"set": [{"prefix": {"addr": "10.1.2.0", "len": 24}}, "192.0.2.9"]})
    );
    let meter = exprs
        .iter()
        .find_map(|e| e.as_array()?.iter().find(|s| s["meter"].is_object()))
        .expect("meter");
    assert_eq!(
        meter["meter"],
        json!({"name": "new_tcp4", "key": {"payload": {"protocol": "ip", "field": "saddr"}},
               "stmt": {"limit": {"rate": 7, "per": "second", "burst": 7, "inv": true}}})
    );
}

/// What `nft -j list table` prints for `rs` (the parts `verify` reads).
fn listing(rs: &pqgate_core::firewall::Ruleset) -> Value {
    let mut objects = vec![json!({"metainfo": {"version": "1.0.6"}})];
    for c in &rs.chains {
        let cmds = commands(&json::replace_batch(rs, None));
        let chain = cmds
            .iter()
            .find(|x| x["add"]["chain"]["name"] == c.name)
            .unwrap();
        objects.push(json!({"chain": chain["add"]["chain"]}));
        for _ in &c.rules {
            objects.push(json!({"rule": {"table": rs.table, "chain": c.name}}));
        }
    }
    json!({ "nftables": objects })
}

#[test]
fn verify_accepts_the_same_table_and_names_a_difference() {
    let rs = ruleset_with_nat();
    let good = listing(&rs);
    nft::verify(&rs, &good).unwrap();

    let mut one_rule_short = good.clone();
    one_rule_short["nftables"].as_array_mut().unwrap().pop();
    let err = nft::verify(&rs, &one_rule_short).unwrap_err();
    assert!(
        matches!(&err, FirewallError::Readback(m) if m.contains("postrouting: 0 rules listed, 1 generated")),
        "{err}"
    );

    let mut open_policy = good.clone();
    open_policy["nftables"][1]["chain"]["policy"] = json!("accept");
    let err = nft::verify(&rs, &open_policy).unwrap_err().to_string();
    assert!(err.contains("chain input: policy is \"accept\""), "{err}");

    let err = nft::verify(&rs, &json!({"x": 1})).unwrap_err().to_string();
    assert!(err.contains("no \"nftables\" array"), "{err}");
}

fn load(text: &str) -> Result<config::Loaded, config::ConfigErrors> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("pqgate.toml");
    std::fs::write(&p, text).unwrap();
    config::load(Some(Path::new(&p)))
}

#[test]
fn section_loads_with_defaults_and_reports_key_paths() {
    let loaded = load("[firewall]\nenabled = true\nextra_tcp = [22]\n\n[[firewall.forward]]\nfrom = \"wg0\"\nto = \"eth1\"\n")
        .unwrap();
    let fw = &loaded.config.firewall;
    assert!(fw.enabled && !fw.persist);
    assert_eq!(
        (fw.table.as_str(), fw.extra_tcp.as_slice()),
        ("pqgate", &[22][..])
    );
    assert_eq!(fw.forward[0].to, "eth1");
    assert!(
        !config::load(None).unwrap().config.firewall.enabled,
        "embedded default: off"
    );

    let errs = load("[firewall]\nmanagement = [\"10.0.0.0/8\", \"10.0.0.0/99\"]\n")
        .err()
        .unwrap()
        .to_string();
    assert!(
        errs.contains(": firewall.management[1]: not a CIDR"),
        "{errs}"
    );
    let errs = load("[firewall]\ncolour = 1\n\n[[firewall.forward]]\nfrom = \"a\"\n")
        .err()
        .unwrap()
        .to_string();
    assert!(errs.contains("colour"), "{errs}");
}
