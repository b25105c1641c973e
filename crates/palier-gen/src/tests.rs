use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::*;

fn run(cfg: &GenConfig) -> (Vec<u8>, u64) {
    let mut out = Vec::new();
    let n = generate(cfg, &mut out).expect("generate");
    (out, n)
}

fn cfg(program: ProgramChoice, members: u32, seed: u64) -> GenConfig {
    GenConfig::new(program, members, seed, Date::constant(2023, 1, 1), 3)
}

fn events(bytes: &[u8]) -> Vec<Value> {
    std::str::from_utf8(bytes)
        .expect("UTF-8")
        .lines()
        .enumerate()
        .map(|(n, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("line {}: {e}: {l}", n + 1)))
        .collect()
}

fn s<'a>(e: &'a Value, k: &str) -> &'a str {
    e[k].as_str().unwrap_or_else(|| panic!("field {k} is not a string in {e}"))
}

fn digits_of(currency: &str) -> u32 {
    CURRENCIES.iter().find(|c| c.code == currency).unwrap_or_else(|| panic!("currency {currency}")).digits
}

/// A decimal string with exactly `digits` decimals, as minor units.
fn minor(v: &Value, digits: u32) -> i64 {
    let t = v.as_str().unwrap_or_else(|| panic!("amount {v} is not a string"));
    let (whole, frac) = t.split_once('.').unwrap_or_else(|| panic!("amount {t}"));
    assert_eq!(frac.len(), digits as usize, "amount {t} has the wrong digits");
    assert!(!whole.is_empty() && whole.bytes().all(|c| c.is_ascii_digit()), "{t}");
    assert!(frac.bytes().all(|c| c.is_ascii_digit()), "{t}");
    whole.parse::<i64>().unwrap() * 10i64.pow(digits) + frac.parse::<i64>().unwrap()
}

fn instant(e: &Value) -> i64 {
    let at = s(e, "at");
    assert_eq!(at.len(), 20, "{at}");
    assert!(at.ends_with('Z'), "{at}");
    let ts: Timestamp = at.parse().unwrap_or_else(|err| panic!("{at}: {err}"));
    assert_eq!(ts.to_string(), at, "not canonical RFC 3339 UTC");
    ts.as_second()
}

#[test]
fn same_seed_same_bytes() {
    for p in ProgramChoice::ALL {
        let c = cfg(p, 300, 42);
        let (a, na) = run(&c);
        let (b, nb) = run(&c);
        assert_eq!(na, nb);
        assert!(a == b, "{p}: output differs between runs");
        let (d, _) = run(&cfg(p, 300, 43));
        assert!(a != d, "{p}: another seed gives the same output");
    }
}

#[test]
fn count_matches_lines_and_every_line_is_json() {
    let (out, n) = run(&cfg(ProgramChoice::All, 500, 7));
    assert!(out.ends_with(b"\n"));
    let evs = events(&out);
    assert_eq!(evs.len() as u64, n);
    for e in &evs {
        assert!(e.is_object());
        instant(e);
    }
}

/// Checks the whole contract the generator promises; returns per-type counts.
fn check_stream(bytes: &[u8], mixed: bool) -> HashMap<String, usize> {
    struct Order {
        member: String,
        placed: i64,
        qty: Vec<i64>,
        delivered: bool,
        cancelled_all: bool,
    }
    let evs = events(bytes);
    // Validity is judged in order of `at` (ties keep file order), as replay does.
    let mut sorted: Vec<(i64, usize)> = evs.iter().enumerate().map(|(k, e)| (instant(e), k)).collect();
    sorted.sort();

    let mut ids = HashSet::new();
    let mut members: HashMap<String, (String, String, i64)> = HashMap::new(); // program, currency, last at
    let mut orders: HashMap<String, Order> = HashMap::new();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for &(at, k) in &sorted {
        let e = &evs[k];
        assert!(ids.insert(s(e, "id").to_owned()), "duplicate id in {e}");
        assert!(s(e, "id").starts_with("e-"));
        let ty = s(e, "type");
        *counts.entry(ty.to_owned()).or_default() += 1;
        let program = e.get("program").and_then(Value::as_str).map(str::to_owned);
        assert_eq!(program.is_some(), mixed, "program field in {e}");
        let member = match ty {
            "member.registered" | "order.placed" => s(e, "member").to_owned(),
            _ => orders.get(s(e, "order")).unwrap_or_else(|| panic!("unknown order in {e}")).member.clone(),
        };
        if ty == "member.registered" {
            let country = s(e, "country");
            let currency = PROGRAMS
                .iter()
                .flat_map(|p| p.countries)
                .find(|c| c.code == country)
                .map(|c| CURRENCIES[c.currency as usize].code)
                .unwrap();
            assert!(member.starts_with("m-"));
            let prev = members.insert(member.clone(), (program.clone().unwrap_or_default(), currency.to_owned(), at));
            assert!(prev.is_none(), "registered twice: {e}");
            if let Some(b) = e.get("birth_date") {
                let b: Date = b.as_str().unwrap().parse().unwrap();
                assert!(b.checked_add(Span::new().years(18)).unwrap() <= Date::constant(2023, 1, 1));
            }
            continue;
        }
        let m = members.get_mut(&member).unwrap_or_else(|| panic!("event before registration: {e}"));
        assert!(at > m.2, "member times not increasing at {e}");
        m.2 = at;
        if mixed {
            assert_eq!(program.as_deref(), Some(m.0.as_str()), "program changed: {e}");
        }
        match ty {
            "order.placed" => {
                let currency = s(e, "currency");
                assert_eq!(currency, m.1, "order currency is not the member's: {e}");
                let d = digits_of(currency);
                let lines = e["lines"].as_array().unwrap();
                assert!((1..=5).contains(&lines.len()));
                let mut owed = 0;
                let mut qty = Vec::new();
                for (li, l) in lines.iter().enumerate() {
                    assert_eq!(s(l, "line"), (li + 1).to_string());
                    let q = l["quantity"].as_i64().unwrap();
                    assert!((1..=3).contains(&q));
                    qty.push(q);
                    let price = minor(&l["price"], d);
                    let discount = l.get("discount").map_or(0, |v| minor(v, d));
                    let tax = l.get("tax").map_or(0, |v| minor(v, d));
                    assert!(price > 0 && discount >= 0 && tax >= 0);
                    assert!(discount <= price, "{e}");
                    assert!(tax <= price - discount, "{e}");
                    assert!(!s(l, "sku").is_empty() && !s(l, "brand").is_empty());
                    assert!(!s(l, "category").is_empty());
                    owed += price - discount;
                }
                owed += e.get("delivery").map_or(0, |v| minor(v, d));
                owed += e.get("duties").map_or(0, |v| minor(v, d));
                let mut paid = 0;
                for p in e["payments"].as_array().unwrap() {
                    let method = s(p, "method");
                    assert!(
                        ["card", "paypal", "apple_pay", "klarna", "cash", "bank_transfer", "gift_voucher"]
                            .contains(&method),
                        "{e}"
                    );
                    let a = minor(&p["amount"], d);
                    assert!(a > 0);
                    paid += a;
                }
                assert_eq!(paid, owed, "payments do not add up: {e}");
                assert!(["web", "app", "store"].contains(&s(e, "channel")));
                let o = s(e, "order");
                assert!(o.starts_with("o-"));
                let prev = orders.insert(
                    o.to_owned(),
                    Order { member: member.clone(), placed: at, qty, delivered: false, cancelled_all: false },
                );
                assert!(prev.is_none(), "order placed twice: {e}");
            }
            "order.delivered" => {
                let o = orders.get_mut(s(e, "order")).unwrap();
                assert!(!o.delivered && !o.cancelled_all, "{e}");
                assert!(at > o.placed);
                o.delivered = true;
            }
            "order.returned" | "order.cancelled" => {
                let o = orders.get_mut(s(e, "order")).unwrap();
                assert!(!o.cancelled_all, "{e}");
                if ty == "order.returned" {
                    assert!(o.delivered, "return before delivery: {e}");
                } else {
                    assert!(!o.delivered, "cancellation after delivery: {e}");
                }
                match e.get("lines") {
                    None => {
                        assert_eq!(ty, "order.cancelled");
                        o.cancelled_all = true;
                        o.qty.iter_mut().for_each(|q| *q = 0);
                    }
                    Some(ls) => {
                        let ls = ls.as_array().unwrap();
                        assert!(!ls.is_empty());
                        for l in ls {
                            let idx: usize = s(l, "line").parse().unwrap();
                            let q = l["quantity"].as_i64().unwrap();
                            assert!(q >= 1);
                            let left = &mut o.qty[idx - 1];
                            assert!(q <= *left, "more units than remain: {e}");
                            *left -= q;
                        }
                        if ty == "order.cancelled" {
                            assert!(o.qty.iter().sum::<i64>() > 0, "partial cancel took all");
                        }
                    }
                }
            }
            other => panic!("unexpected type {other}"),
        }
    }
    counts
}

#[test]
fn streams_keep_the_contract() {
    for (p, seed) in [
        (ProgramChoice::All, 1),
        (ProgramChoice::NetAPorter, 2),
        (ProgramChoice::MrPorter, 3),
        (ProgramChoice::Perfone, 4),
    ] {
        let (out, _) = run(&cfg(p, 2000, seed));
        check_stream(&out, p == ProgramChoice::All);
    }
}

#[test]
fn currencies_and_minor_digits() {
    let (out, _) = run(&cfg(ProgramChoice::NetAPorter, 3000, 5));
    let evs = events(&out);
    let mut seen = HashSet::new();
    for e in &evs {
        if s(e, "type") == "order.placed" {
            seen.insert(s(e, "currency").to_owned());
        }
    }
    for c in ["GBP", "EUR", "USD", "AUD", "HKD", "AED", "KWD", "QAR", "SAR"] {
        assert!(seen.contains(c), "no {c} order");
    }
    let kwd = evs.iter().find(|e| e.get("currency").and_then(Value::as_str) == Some("KWD")).unwrap();
    let price = s(&kwd["lines"][0], "price");
    assert_eq!(price.split_once('.').unwrap().1.len(), 3, "{price}");

    for (p, allowed) in [(ProgramChoice::MrPorter, &["GBP", "EUR", "USD"][..]), (ProgramChoice::Perfone, &["RUB"][..])]
    {
        let (out, _) = run(&cfg(p, 500, 6));
        for e in events(&out) {
            if let Some(c) = e.get("currency") {
                assert!(allowed.contains(&c.as_str().unwrap()), "{p}: {e}");
            }
            if let Some(c) = e.get("country") {
                let c = c.as_str().unwrap();
                if p == ProgramChoice::Perfone {
                    assert_eq!(c, "RU");
                } else {
                    assert!(["GB", "FR", "US"].contains(&c));
                }
            }
        }
    }
}

#[test]
fn event_mix_is_realistic() {
    let members = 5000;
    let (out, n) = run(&cfg(ProgramChoice::All, members, 11));
    let counts = check_stream(&out, true);
    let per_member = n as f64 / f64::from(members);
    assert!((8.0..12.0).contains(&per_member), "{per_member} events per member");
    let c = |t: &str| counts.get(t).copied().unwrap_or(0) as f64;
    let placed = c("order.placed");
    assert_eq!(c("member.registered"), f64::from(members));
    let delivered = c("order.delivered") / placed;
    assert!((0.93..0.99).contains(&delivered), "delivered {delivered}");
    let returned = c("order.returned") / placed;
    assert!((0.17..0.27).contains(&returned), "returned {returned}");
    let cancelled = c("order.cancelled") / placed;
    assert!((0.015..0.045).contains(&cancelled), "cancelled {cancelled}");

    // Roughly 1 % of the events are written late; the rest are in order.
    let evs = events(&out);
    let mut max = i64::MIN;
    let mut late = 0;
    for e in &evs {
        let at = instant(e);
        if at < max {
            late += 1;
        }
        max = max.max(at);
    }
    let late = f64::from(late) / evs.len() as f64;
    assert!((0.002..0.02).contains(&late), "late {late}");
}

#[test]
fn no_late_arrivals_gives_a_sorted_file() {
    let mut c = cfg(ProgramChoice::NetAPorter, 1000, 9);
    c.late_per_mille = 0;
    let (out, _) = run(&c);
    let ats: Vec<i64> = events(&out).iter().map(instant).collect();
    assert!(ats.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn staff_and_birth_dates_appear() {
    let (out, _) = run(&cfg(ProgramChoice::NetAPorter, 5000, 12));
    let regs: Vec<Value> = events(&out).into_iter().filter(|e| s(e, "type") == "member.registered").collect();
    let staff = regs.iter().filter(|e| e.get("staff") == Some(&Value::Bool(true))).count();
    assert!((20..90).contains(&staff), "{staff} staff");
    let born = regs.iter().filter(|e| e.get("birth_date").is_some()).count();
    assert!(born > 3000 && born < 4500, "{born} birth dates");
}

#[test]
fn zero_years_gives_registrations_only() {
    let c = GenConfig::new(ProgramChoice::Perfone, 10, 1, Date::constant(2024, 2, 29), 0);
    let (out, n) = run(&c);
    assert_eq!(n, 10);
    assert!(events(&out).iter().all(|e| s(e, "type") == "member.registered"));
}

#[test]
fn program_names_round_trip() {
    for p in ProgramChoice::ALL {
        assert_eq!(p.name().parse::<ProgramChoice>(), Ok(p));
    }
    assert!("nap".parse::<ProgramChoice>().is_err());
}

#[test]
fn amounts_format() {
    let mut b = Vec::new();
    push_amount(&mut b, 12345, 2);
    b.push(b' ');
    push_amount(&mut b, 12345, 3);
    b.push(b' ');
    push_amount(&mut b, 5, 2);
    b.push(b' ');
    push_instant(&mut b, 1_709_648_527);
    assert_eq!(String::from_utf8(b).unwrap(), "123.45 12.345 0.05 2024-03-05T14:22:07Z");
}
