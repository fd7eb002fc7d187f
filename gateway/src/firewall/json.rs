//! The core's [`Ruleset`] as an nftables JSON batch (the `nftables` crate's schema types): one
//! transaction that replaces pqgate's table whole, or removes it.

use std::borrow::Cow;

use nftables::batch::Batch;
use nftables::expr::{
    CT, Expression, Meta, MetaKey, NamedExpression, Payload, PayloadBase, PayloadField, PayloadRaw,
    Prefix, SetItem,
};
use nftables::schema::{self, NfListObject, Nftables};
use nftables::stmt::{self, Limit, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use pqgate_core::firewall::{
    Chain, ChainKind, Family, Hook, Match, Meter, Policy, Rule, Ruleset, Verdict,
};
use pqgate_core::wg::IpCidr;

/// Offset of the UDP payload in the transport header, in bits (the UDP header is 8 bytes).
const UDP_PAYLOAD_OFFSET_BITS: u32 = 64;
/// Width of [`Match::UdpPayloadWord`], in bits.
const WORD_BITS: u32 = 32;

fn table(name: &str) -> schema::Table<'static> {
    schema::Table {
        family: NfFamily::INet,
        name: Cow::Owned(name.to_owned()),
        handle: None,
    }
}

/// One transaction: create-or-keep then delete the table (so the delete cannot fail on a
/// missing table), re-create it with every chain and rule, and delete `retire` (a table this
/// process installed under another name) the same way. Applied all or nothing.
pub(crate) fn replace_batch(rs: &Ruleset, retire: Option<&str>) -> Nftables<'static> {
    let mut batch = Batch::new();
    batch.add(NfListObject::Table(table(&rs.table)));
    batch.delete(NfListObject::Table(table(&rs.table)));
    batch.add(NfListObject::Table(table(&rs.table)));
    for chain in &rs.chains {
        batch.add(NfListObject::Chain(chain_object(&rs.table, chain)));
    }
    for chain in &rs.chains {
        for rule in &chain.rules {
            batch.add(NfListObject::Rule(rule_object(&rs.table, chain.name, rule)));
        }
    }
    if let Some(old) = retire.filter(|old| *old != rs.table) {
        batch.add(NfListObject::Table(table(old)));
        batch.delete(NfListObject::Table(table(old)));
    }
    batch.to_nftables()
}

/// Deletes the table `name` if it exists (one transaction).
pub(crate) fn remove_batch(name: &str) -> Nftables<'static> {
    let mut batch = Batch::new();
    batch.add(NfListObject::Table(table(name)));
    batch.delete(NfListObject::Table(table(name)));
    batch.to_nftables()
}

fn chain_object(table: &str, chain: &Chain) -> schema::Chain<'static> {
    schema::Chain {
        family: NfFamily::INet,
        table: Cow::Owned(table.to_owned()),
        name: Cow::Borrowed(chain.name),
        _type: Some(match chain.kind {
            ChainKind::Filter => NfChainType::Filter,
            ChainKind::Nat => NfChainType::NAT,
        }),
        hook: Some(hook(chain.hook)),
        prio: Some(chain.priority),
        policy: Some(match chain.policy {
            Policy::Accept => NfChainPolicy::Accept,
            Policy::Drop => NfChainPolicy::Drop,
        }),
        ..schema::Chain::default()
    }
}

/// The crate's name for a hook.
pub(crate) fn hook(h: Hook) -> NfHook {
    match h {
        Hook::Input => NfHook::Input,
        Hook::Forward => NfHook::Forward,
        Hook::Postrouting => NfHook::Postrouting,
    }
}

fn rule_object(table: &str, chain: &'static str, rule: &Rule) -> schema::Rule<'static> {
    let mut expr: Vec<Statement<'static>> = rule.matches.iter().map(match_statement).collect();
    if let Some(meter) = &rule.meter {
        expr.push(meter_statement(meter));
    }
    expr.push(match rule.verdict {
        Verdict::Accept => Statement::Accept(None),
        Verdict::Drop => Statement::Drop(None),
        Verdict::Masquerade => Statement::Masquerade(None),
    });
    schema::Rule {
        family: NfFamily::INet,
        table: Cow::Owned(table.to_owned()),
        chain: Cow::Borrowed(chain),
        expr: Cow::Owned(expr),
        comment: Some(Cow::Owned(rule.comment.clone())),
        ..schema::Rule::default()
    }
}

fn field(protocol: &'static str, name: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: Cow::Borrowed(protocol),
            field: Cow::Borrowed(name),
        },
    )))
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn string(s: impl Into<String>) -> Expression<'static> {
    Expression::String(Cow::Owned(s.into()))
}

/// One value bare, several as an anonymous set.
fn one_or_set(mut items: Vec<Expression<'static>>) -> Expression<'static> {
    match items.len() {
        1 => items.remove(0),
        _ => Expression::Named(NamedExpression::Set(
            items.into_iter().map(SetItem::Element).collect(),
        )),
    }
}

fn prefix(c: &IpCidr) -> Expression<'static> {
    let net = c.network();
    let host_len = if net.addr().is_ipv4() { 32 } else { 128 };
    match net.prefix() == host_len {
        true => string(net.addr().to_string()),
        false => Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(string(net.addr().to_string())),
            len: u32::from(net.prefix()),
        })),
    }
}

fn eq(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(stmt::Match {
        left,
        right,
        op: Operator::EQ,
    })
}

fn match_statement(m: &Match) -> Statement<'static> {
    match m {
        Match::CtState(states) => Statement::Match(stmt::Match {
            left: Expression::Named(NamedExpression::CT(CT {
                key: Cow::Borrowed("state"),
                family: None,
                dir: None,
            })),
            right: match states.as_slice() {
                [one] => string(one.nft_name()),
                _ => Expression::List(states.iter().map(|s| string(s.nft_name())).collect()),
            },
            op: Operator::IN,
        }),
        Match::IifName(name) => eq(meta(MetaKey::Iifname), string(name.clone())),
        Match::OifName(name) => eq(meta(MetaKey::Oifname), string(name.clone())),
        Match::L4Proto(l4) => eq(meta(MetaKey::L4proto), string(l4.nft_name())),
        Match::Saddr(family, nets) => eq(
            field(family.nft_name(), "saddr"),
            one_or_set(nets.iter().map(prefix).collect()),
        ),
        Match::Daddr(addr) => eq(
            field(Family::of(*addr).nft_name(), "daddr"),
            string(addr.to_string()),
        ),
        Match::Dport(l4, ports) => eq(
            field(l4.nft_name(), "dport"),
            one_or_set(
                ports
                    .iter()
                    .map(|p| Expression::Number(u32::from(*p)))
                    .collect(),
            ),
        ),
        Match::IcmpType(family, types) => eq(
            field(
                match family {
                    Family::V4 => "icmp",
                    Family::V6 => "icmpv6",
                },
                "type",
            ),
            one_or_set(types.iter().map(|t| string(*t)).collect()),
        ),
        Match::UdpPayloadWord(word) => eq(
            Expression::Named(NamedExpression::Payload(Payload::PayloadRaw(PayloadRaw {
                base: PayloadBase::TH,
                offset: UDP_PAYLOAD_OFFSET_BITS,
                len: WORD_BITS,
            }))),
            Expression::Number(*word),
        ),
    }
}

/// `meter NAME { ip saddr limit rate over N/second burst N packets }`.
fn meter_statement(m: &Meter) -> Statement<'static> {
    Statement::Meter(stmt::Meter {
        name: Cow::Owned(m.name.clone()),
        key: field(m.family.nft_name(), "saddr"),
        stmt: Box::new(Statement::Limit(Limit {
            rate: m.per_second,
            rate_unit: None,
            per: Some(Cow::Borrowed("second")),
            burst: Some(m.per_second),
            burst_unit: None,
            inv: Some(true),
        })),
    })
}
