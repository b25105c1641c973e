//! Seeded, reproducible synthetic event streams for palier.
//!
//! [`generate`] writes JSON Lines events (the contract of `shared/spec/contract.md`)
//! for a population of members of NET-A-PORTER, MR PORTER, Perfone, or a mix of the
//! three. The same [`GenConfig`] always gives byte-identical output.
//!
//! Every event is valid on its own and against the events before it (in order of
//! `at`), so `palier replay` accepts the whole stream:
//!
//! - each member is first `member.registered` (within 30 days of the start), with a
//!   country whose reward currency is the currency of all of the member's orders;
//! - `order.placed` has 1–5 lines, payments adding up exactly to
//!   Σ(price − discount) + delivery + duties, amounts with exactly the currency's
//!   minor digits, `discount ≤ price`, `tax ≤ price − discount`, no points payments
//!   and no promotion codes (both depend on engine state);
//! - deliveries, returns and cancellations never remove more units than remain.
//!
//! Each member's events have strictly increasing `at`. The file is in order of `at`
//! except for about 1 % of the events (never a registration), written 1–5 lines late.
//!
//! Each member draws from its own ChaCha8 stream, keyed by (seed, member, step), so
//! a member's history does not depend on how many other members there are.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::io::{self, BufWriter, Write};
use std::str::FromStr;

use jiff::Span;
use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Which program(s) the members belong to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProgramChoice {
    /// NET-A-PORTER Rewards (nine currencies).
    NetAPorter,
    /// MR PORTER Rewards (GBP, EUR, USD).
    MrPorter,
    /// Perfone cashback (RUB).
    Perfone,
    /// A mix: 60 % NET-A-PORTER, 25 % MR PORTER, 15 % Perfone; every event then
    /// carries its member's `program`.
    All,
}

impl ProgramChoice {
    /// The name used on the command line (the program id, or `all`).
    pub const fn name(self) -> &'static str {
        match self {
            ProgramChoice::NetAPorter => "net-a-porter",
            ProgramChoice::MrPorter => "mr-porter",
            ProgramChoice::Perfone => "perfone",
            ProgramChoice::All => "all",
        }
    }

    /// Every choice, in command-line order.
    pub const ALL: [ProgramChoice; 4] =
        [ProgramChoice::NetAPorter, ProgramChoice::MrPorter, ProgramChoice::Perfone, ProgramChoice::All];
}

impl fmt::Display for ProgramChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error for an unknown program name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownProgram(pub String);

impl fmt::Display for UnknownProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown program `{}` (expected net-a-porter, mr-porter, perfone or all)", self.0)
    }
}

impl std::error::Error for UnknownProgram {}

impl FromStr for ProgramChoice {
    type Err = UnknownProgram;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProgramChoice::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| UnknownProgram(s.to_owned()))
    }
}

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct GenConfig {
    /// The program of every member, or a mix.
    pub program: ProgramChoice,
    /// Number of members (`m-000001` …).
    pub members: u32,
    /// Seed: the same configuration gives byte-identical output.
    pub seed: u64,
    /// First day (UTC) of the stream; registrations fall in the 30 days from it.
    pub start: Date,
    /// Orders are placed during this many years from `start` (their deliveries and
    /// returns may run a few weeks past the end).
    pub years: u32,
    /// Events (other than registrations) written 1–5 lines late, per mille.
    /// Default 10 (1 %); 0 gives a file sorted by `at`.
    pub late_per_mille: u32,
    /// Mean orders per member and year (members vary a lot around it: a few
    /// heavy buyers, many occasional ones). Default 1.35, about 10 events per member
    /// over 3 years.
    pub orders_per_year: f64,
}

impl GenConfig {
    /// A configuration with the default late-arrival rate and order frequency.
    pub fn new(program: ProgramChoice, members: u32, seed: u64, start: Date, years: u32) -> Self {
        GenConfig { program, members, seed, start, years, ..GenConfig::default() }
    }
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            program: ProgramChoice::All,
            members: 1000,
            seed: 1,
            start: Date::constant(2023, 1, 1),
            years: 3,
            late_per_mille: 10,
            orders_per_year: 1.35,
        }
    }
}

/// Writes the events of `cfg` to `out` as JSON Lines; returns how many were written.
pub fn generate(cfg: &GenConfig, out: &mut impl Write) -> io::Result<u64> {
    let start_ts = day_start(cfg.start)?;
    let end_date = cfg.start.checked_add(Span::new().years(i64::from(cfg.years))).map_err(invalid)?;
    let end_ts = day_start(end_date)?;
    let mut g = Generator {
        seed: cfg.seed,
        start: cfg.start,
        start_ts,
        end_ts,
        mixed: cfg.program == ProgramChoice::All,
        rate_scale: candidate_rate_scale(),
        members: Vec::with_capacity(cfg.members as usize),
        orders: 0,
        lines: Vec::with_capacity(MAX_LINES),
        em: Emitter {
            out: BufWriter::with_capacity(1 << 17, out),
            buf: Vec::with_capacity(2048),
            delayed: Vec::new(),
            late_rng: ChaCha8Rng::from_seed(key(cfg.seed, u32::MAX, u32::MAX, 1)),
            late_per_mille: cfg.late_per_mille.min(1000),
            events: 0,
        },
    };
    let mut heap = BinaryHeap::with_capacity(cfg.members as usize);
    for i in 0..cfg.members {
        let m = g.new_member(i, cfg)?;
        heap.push(Reverse((m.next_at, i)));
        g.members.push(m);
    }
    while let Some(Reverse((_, i))) = heap.pop() {
        let next = g.step(i)?;
        if next != NEVER {
            heap.push(Reverse((next, i)));
        }
    }
    g.em.finish()?;
    Ok(g.em.events)
}

// ---------------------------------------------------------------------------
// Reference data

const NEVER: i64 = i64::MAX;
const MINUTE: i64 = 60;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;
const YEAR_SECONDS: f64 = 365.2425 * 86_400.0;
const MAX_LINES: usize = 5;
const CATALOG: u64 = 40_000;

struct Currency {
    code: &'static str,
    digits: u32,
    /// Price level relative to GBP, in percent (a GBP 100 item costs this many
    /// major units).
    scale_pct: u32,
}

const GBP: u8 = 0;
const EUR: u8 = 1;
const USD: u8 = 2;
const AUD: u8 = 3;
const HKD: u8 = 4;
const AED: u8 = 5;
const KWD: u8 = 6;
const QAR: u8 = 7;
const SAR: u8 = 8;
const RUB: u8 = 9;

const CURRENCIES: [Currency; 10] = [
    Currency { code: "GBP", digits: 2, scale_pct: 100 },
    Currency { code: "EUR", digits: 2, scale_pct: 115 },
    Currency { code: "USD", digits: 2, scale_pct: 125 },
    Currency { code: "AUD", digits: 2, scale_pct: 190 },
    Currency { code: "HKD", digits: 2, scale_pct: 980 },
    Currency { code: "AED", digits: 2, scale_pct: 460 },
    Currency { code: "KWD", digits: 3, scale_pct: 38 },
    Currency { code: "QAR", digits: 2, scale_pct: 455 },
    Currency { code: "SAR", digits: 2, scale_pct: 470 },
    Currency { code: "RUB", digits: 2, scale_pct: 10_000 },
];

struct Country {
    code: &'static str,
    weight: u32,
    currency: u8,
    /// VAT included in prices, basis points (0: no tax sent).
    vat_bp: u32,
    /// Orders sometimes pay import duties.
    duties: bool,
    /// Klarna is offered.
    klarna: bool,
}

const fn country(code: &'static str, weight: u32, currency: u8, vat_bp: u32, duties: bool, klarna: bool) -> Country {
    Country { code, weight, currency, vat_bp, duties, klarna }
}

const NAP_COUNTRIES: &[Country] = &[
    country("GB", 22, GBP, 2000, false, true),
    country("US", 20, USD, 0, true, true),
    country("FR", 6, EUR, 2000, false, false),
    country("DE", 7, EUR, 1900, false, true),
    country("IT", 5, EUR, 2200, false, true),
    country("ES", 3, EUR, 2100, false, false),
    country("NL", 2, EUR, 2100, false, true),
    country("CH", 2, EUR, 810, true, false),
    country("CA", 2, USD, 0, true, false),
    country("JP", 2, USD, 0, true, false),
    country("SG", 2, USD, 0, true, false),
    country("AU", 6, AUD, 1000, true, true),
    country("HK", 6, HKD, 0, false, false),
    country("AE", 6, AED, 500, true, false),
    country("KW", 2, KWD, 0, true, false),
    country("QA", 2, QAR, 0, true, false),
    country("SA", 4, SAR, 1500, true, false),
];

const MRP_COUNTRIES: &[Country] = &[
    country("GB", 45, GBP, 2000, false, true),
    country("US", 35, USD, 0, true, true),
    country("FR", 20, EUR, 2000, false, false),
];

const PF_COUNTRIES: &[Country] = &[country("RU", 1, RUB, 2000, false, false)];

struct Category {
    id: &'static str,
    weight: u32,
    /// Unit price range, GBP major units.
    min: f64,
    max: f64,
}

const fn category(id: &'static str, weight: u32, min: f64, max: f64) -> Category {
    Category { id, weight, min, max }
}

const NAP_CATEGORIES: &[Category] = &[
    category("clothing", 35, 90.0, 2500.0),
    category("shoes", 15, 250.0, 1200.0),
    category("bags", 12, 400.0, 3000.0),
    category("accessories", 12, 50.0, 600.0),
    category("jewelry", 6, 100.0, 1500.0),
    category("fine_jewelry", 2, 900.0, 3000.0),
    category("beauty", 12, 50.0, 300.0),
    category("lifestyle", 6, 50.0, 800.0),
];

const MRP_CATEGORIES: &[Category] = &[
    category("clothing", 45, 60.0, 2500.0),
    category("shoes", 15, 200.0, 1200.0),
    category("accessories", 15, 50.0, 600.0),
    category("watches", 4, 1000.0, 3000.0),
    category("grooming", 12, 50.0, 200.0),
    category("lifestyle", 9, 50.0, 800.0),
];

const PF_CATEGORIES: &[Category] = &[
    category("clothing", 40, 80.0, 2500.0),
    category("shoes", 18, 250.0, 1200.0),
    category("bags", 14, 400.0, 3000.0),
    category("accessories", 14, 50.0, 600.0),
    category("beauty", 14, 50.0, 300.0),
];

const NAP_BRANDS: &[&str] = &[
    "Gucci",
    "Saint Laurent",
    "Bottega Veneta",
    "Loewe",
    "The Row",
    "Khaite",
    "Toteme",
    "Prada",
    "Valentino Garavani",
    "Alaia",
    "Chloe",
    "Jacquemus",
    "Balenciaga",
    "Gianvito Rossi",
    "Aquazzura",
    "Isabel Marant",
    "Zimmermann",
    "Self-Portrait",
    "Max Mara",
    "Loro Piana",
    "Brunello Cucinelli",
    "Alexander McQueen",
    "Fendi",
    "Miu Miu",
    "Jimmy Choo",
    "Sophie Buhai",
    "Cartier",
    "Bulgari",
    "La Mer",
    "Augustinus Bader",
];

const MRP_BRANDS: &[&str] = &[
    "Tom Ford",
    "Zegna",
    "Loro Piana",
    "Brunello Cucinelli",
    "Bottega Veneta",
    "Saint Laurent",
    "Gucci",
    "Prada",
    "Moncler",
    "Acne Studios",
    "A.P.C.",
    "Our Legacy",
    "Stone Island",
    "Thom Browne",
    "Visvim",
    "Kingsman",
    "Drake's",
    "Sunspel",
    "John Smedley",
    "Common Projects",
    "Grenson",
    "IWC Schaffhausen",
    "Jaeger-LeCoultre",
    "Le Labo",
    "Aesop",
];

const PF_BRANDS: &[&str] = &[
    "Brunello Cucinelli",
    "Loro Piana",
    "Max Mara",
    "Prada",
    "Miu Miu",
    "Balenciaga",
    "Bottega Veneta",
    "The Row",
    "Khaite",
    "Jil Sander",
    "Dries Van Noten",
    "Rick Owens",
    "Maison Margiela",
    "Alexander Wang",
    "Ushatava",
    "Alena Akhmadullina",
    "12 Storeez",
    "Byredo",
    "Maison Francis Kurkdjian",
    "Frederic Malle",
];

struct Program {
    id: &'static str,
    sku_prefix: &'static str,
    countries: &'static [Country],
    categories: &'static [Category],
    brands: &'static [&'static str],
    /// web, app, store
    channels: [u32; 3],
    /// Percent of orders paying a delivery fee.
    delivery_pct: u32,
}

const PROGRAMS: [Program; 3] = [
    Program {
        id: "net-a-porter",
        sku_prefix: "NAP-",
        countries: NAP_COUNTRIES,
        categories: NAP_CATEGORIES,
        brands: NAP_BRANDS,
        channels: [58, 37, 5],
        delivery_pct: 20,
    },
    Program {
        id: "mr-porter",
        sku_prefix: "MRP-",
        countries: MRP_COUNTRIES,
        categories: MRP_CATEGORIES,
        brands: MRP_BRANDS,
        channels: [60, 36, 4],
        delivery_pct: 20,
    },
    Program {
        id: "perfone",
        sku_prefix: "PF-",
        countries: PF_COUNTRIES,
        categories: PF_CATEGORIES,
        brands: PF_BRANDS,
        channels: [40, 15, 45],
        delivery_pct: 10,
    },
];

/// Share of members per program in a mixed stream.
const PROGRAM_MIX: [u32; 3] = [60, 25, 15];

/// Relative order frequency per month (sales in January, June–July, November,
/// December) and per UTC hour.
const MONTH_WEIGHT: [f64; 12] = [1.05, 0.8, 0.85, 0.9, 0.95, 1.1, 1.05, 0.85, 0.95, 1.0, 1.35, 1.4];
const HOUR_WEIGHT: [f64; 24] = [
    0.25, 0.15, 0.1, 0.1, 0.15, 0.25, 0.4, 0.6, 0.75, 0.85, 0.9, 0.95, 1.0, 1.0, 0.95, 0.9, 0.9, 0.95, 1.0, 1.0, 0.95,
    0.85, 0.6, 0.4,
];
const LINES_WEIGHT: [u32; MAX_LINES] = [52, 26, 12, 6, 4];
const QUANTITY_WEIGHT: [u32; 3] = [87, 10, 3];

/// Thinning: candidates are drawn this much faster than the mean rate, then kept with
/// probability `month × hour / (max month × max hour)`.
fn candidate_rate_scale() -> f64 {
    let max = |w: &[f64]| w.iter().copied().fold(0.0, f64::max);
    let mean = |w: &[f64]| w.iter().sum::<f64>() / w.len() as f64;
    (max(&MONTH_WEIGHT) * max(&HOUR_WEIGHT)) / (mean(&MONTH_WEIGHT) * mean(&HOUR_WEIGHT))
}

// ---------------------------------------------------------------------------
// Members and orders in flight

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stage {
    /// Cancel the whole order (no delivery follows), or some units (delivery
    /// follows).
    Cancel {
        partial: bool,
    },
    Deliver,
    Return,
}

struct Track {
    at: i64,
    order: u64,
    /// Units still bought, per line.
    qty: [u8; MAX_LINES],
    stage: Stage,
}

struct Member {
    next_at: i64,
    last_at: i64,
    next_order: i64,
    /// Candidate orders per second (before thinning).
    rate: f64,
    step: u32,
    program: u8,
    country: u8,
    staff: bool,
    registered: bool,
    birth: Option<Date>,
    tracks: Vec<Track>,
}

impl Member {
    fn compute_next(&mut self) {
        let t = self.tracks.iter().map(|t| t.at).min().unwrap_or(NEVER);
        self.next_at = t.min(self.next_order);
    }
}

struct LineGen {
    product: u64,
    brand: u16,
    category: u16,
    qty: u8,
    price: i64,
    discount: i64,
    tax: i64,
    on_sale: bool,
}

struct Generator<'w, W: Write> {
    seed: u64,
    start: Date,
    start_ts: i64,
    end_ts: i64,
    mixed: bool,
    rate_scale: f64,
    members: Vec<Member>,
    orders: u64,
    lines: Vec<LineGen>,
    em: Emitter<'w, W>,
}

fn key(seed: u64, member: u32, step: u32, tag: u64) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..8].copy_from_slice(&seed.to_le_bytes());
    k[8..12].copy_from_slice(&member.to_le_bytes());
    k[12..16].copy_from_slice(&step.to_le_bytes());
    k[16..24].copy_from_slice(&tag.to_le_bytes());
    k
}

fn pick(rng: &mut ChaCha8Rng, weights: impl Iterator<Item = u32> + Clone) -> usize {
    let total: u32 = weights.clone().sum();
    let mut x = rng.random_range(0..total);
    for (i, w) in weights.enumerate() {
        if x < w {
            return i;
        }
        x -= w;
    }
    unreachable!("weights sum")
}

fn invalid(e: impl fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}

fn day_start(d: Date) -> io::Result<i64> {
    Ok(d.to_zoned_datetime(TimeZone::UTC).map_err(invalid)?.timestamp().as_second())
}

fn civil(t: i64) -> DateTime {
    let ts = Timestamp::from_second(t).expect("instant in jiff's range");
    TimeZone::UTC.to_datetime(ts)
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A price in minor units for `gbp` GBP major units in currency `cur`, rounded the
/// way shops price (to 5 or 10 major units above 100).
fn shop_price(gbp: f64, cur: &Currency, odd: bool) -> i64 {
    let major = gbp * f64::from(cur.scale_pct) / 100.0;
    let step = if major >= 1000.0 {
        10.0
    } else if major >= 100.0 {
        5.0
    } else {
        1.0
    };
    let whole = ((major / step).round() * step).max(1.0) as i64;
    let unit = 10i64.pow(cur.digits);
    if odd && major < 100.0 && whole > 1 {
        // "49.99"
        whole * unit - unit / 100
    } else {
        whole * unit
    }
}

impl<W: Write> Generator<'_, W> {
    fn new_member(&self, i: u32, cfg: &GenConfig) -> io::Result<Member> {
        let mut rng = ChaCha8Rng::from_seed(key(self.seed, i, 0, 0));
        let program = match cfg.program {
            ProgramChoice::NetAPorter => 0,
            ProgramChoice::MrPorter => 1,
            ProgramChoice::Perfone => 2,
            ProgramChoice::All => pick(&mut rng, PROGRAM_MIX.iter().copied()) as u8,
        };
        let prog = &PROGRAMS[program as usize];
        let country = pick(&mut rng, prog.countries.iter().map(|c| c.weight)) as u8;
        let staff = rng.random_bool(0.01);
        let birth = if rng.random_bool(0.75) {
            // 18 to 74 years old on the first day.
            let days: i64 = rng.random_range(6_580..27_000);
            Some(self.start.checked_sub(Span::new().days(days)).map_err(invalid)?)
        } else {
            None
        };
        // Log-normal activity (σ = 1, mean 1): many occasional buyers, a few heavy
        // ones.
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let per_year = (cfg.orders_per_year.max(0.0) * (z - 0.5).exp()).min(60.0);
        let rate = per_year / YEAR_SECONDS * self.rate_scale;
        let reg = self.start_ts + rng.random_range(0..30 * DAY);
        Ok(Member {
            next_at: reg,
            last_at: i64::MIN,
            next_order: NEVER,
            rate,
            step: 1,
            program,
            country,
            staff,
            registered: false,
            birth,
            tracks: Vec::new(),
        })
    }

    /// Emits the member's next event; returns the time of the one after (or NEVER).
    fn step(&mut self, i: u32) -> io::Result<i64> {
        let m = &mut self.members[i as usize];
        let mut rng = ChaCha8Rng::from_seed(key(self.seed, i, m.step, 0));
        m.step += 1;
        let at = m.next_at.max(m.last_at.saturating_add(1));
        m.last_at = at;
        let prog = &PROGRAMS[m.program as usize];
        let program = if self.mixed { Some(prog.id) } else { None };

        if !m.registered {
            m.registered = true;
            let em = &mut self.em;
            em.begin("member.registered", at, program);
            em.member(i);
            em.str_field("country", prog.countries[m.country as usize].code);
            if let Some(b) = m.birth {
                em.buf.extend_from_slice(b",\"birth_date\":\"");
                push_date(&mut em.buf, b);
                em.buf.push(b'"');
            }
            if m.staff {
                em.buf.extend_from_slice(b",\"staff\":true");
            }
            em.end(false)?;
            // Many members register at their first purchase.
            let first = if rng.random_bool(0.35) {
                at + rng.random_range(MINUTE..2 * HOUR)
            } else {
                next_order_time(&mut rng, at, m.rate, self.end_ts)
            };
            m.next_order = if first < self.end_ts { first } else { NEVER };
        } else {
            let track = m.tracks.iter().enumerate().min_by_key(|(_, t)| t.at).map(|(k, t)| (k, t.at));
            match track {
                Some((k, t)) if t < m.next_order => {
                    advance_track(&mut self.em, &mut rng, m, k, at, program)?;
                }
                _ => {
                    self.orders += 1;
                    let order = self.orders;
                    place_order(&mut self.em, &mut rng, &mut self.lines, m, i, order, at, program)?;
                    m.next_order = next_order_time(&mut rng, at, m.rate, self.end_ts);
                }
            }
        }
        m.compute_next();
        Ok(m.next_at)
    }
}

/// The next order instant after `from` (thinned Poisson process), or NEVER at or
/// after `end`.
fn next_order_time(rng: &mut ChaCha8Rng, from: i64, rate: f64, end: i64) -> i64 {
    if rate <= 0.0 {
        return NEVER;
    }
    let wmax = MONTH_WEIGHT.iter().copied().fold(0.0, f64::max) * HOUR_WEIGHT.iter().copied().fold(0.0, f64::max);
    let mut t = from as f64;
    loop {
        let u: f64 = 1.0 - rng.random::<f64>();
        t += -u.ln() / rate;
        if t >= end as f64 {
            return NEVER;
        }
        let ti = t as i64;
        let dt = civil(ti);
        let w = MONTH_WEIGHT[(dt.month() - 1) as usize] * HOUR_WEIGHT[dt.hour() as usize];
        if rng.random::<f64>() * wmax < w {
            return ti.max(from + MINUTE);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn place_order<W: Write>(
    em: &mut Emitter<'_, W>,
    rng: &mut ChaCha8Rng,
    lines: &mut Vec<LineGen>,
    m: &mut Member,
    member: u32,
    order: u64,
    at: i64,
    program: Option<&'static str>,
) -> io::Result<()> {
    let prog = &PROGRAMS[m.program as usize];
    let ctry = &prog.countries[m.country as usize];
    let cur = &CURRENCIES[ctry.currency as usize];
    let month = civil(at).month();
    let sale_season = matches!(month, 1 | 6 | 7 | 12);

    // Lines.
    lines.clear();
    let n = 1 + pick(rng, LINES_WEIGHT.iter().copied());
    let promo_pct: i64 = if rng.random_bool(0.10) { [10, 15, 20, 25][rng.random_range(0..4)] } else { 0 };
    let with_tax = ctry.vat_bp > 0 && rng.random_bool(0.7);
    for _ in 0..n {
        let u: f64 = rng.random();
        // Popular products sell more: the top one takes about 0.1 % of lines.
        let product = (CATALOG as f64 * u * u.sqrt()) as u64;
        let h = splitmix64(product ^ (u64::from(m.program) << 40));
        let brand = (h % prog.brands.len() as u64) as u16;
        let cats = prog.categories;
        let total_w: u32 = cats.iter().map(|c| c.weight).sum();
        let mut x = ((h >> 16) % u64::from(total_w)) as u32;
        let mut category = 0;
        for (ci, c) in cats.iter().enumerate() {
            if x < c.weight {
                category = ci;
                break;
            }
            x -= c.weight;
        }
        let c = &cats[category];
        let f = ((h >> 40) & 0xFF_FFFF) as f64 / f64::from(1u32 << 24);
        let gbp = c.min * (c.max / c.min).powf(f);
        let on_sale = rng.random_bool(if sale_season { 0.35 } else { 0.08 });
        let odd = (h >> 8) & 7 == 0;
        let unit = if on_sale {
            let markdown = [30.0, 40.0, 50.0, 60.0][rng.random_range(0..4)];
            shop_price(gbp * (100.0 - markdown) / 100.0, cur, odd)
        } else {
            shop_price(gbp, cur, odd)
        };
        let qty = 1 + pick(rng, QUANTITY_WEIGHT.iter().copied()) as u8;
        let price = unit * i64::from(qty);
        let discount = if on_sale { 0 } else { price * promo_pct / 100 };
        let tax = if with_tax {
            let net = price - discount;
            let vat = i64::from(ctry.vat_bp);
            net * vat / (10_000 + vat)
        } else {
            0
        };
        lines.push(LineGen { product, brand, category: category as u16, qty, price, discount, tax, on_sale });
    }
    let goods: i64 = lines.iter().map(|l| l.price - l.discount).sum();
    let delivery = if rng.random_bool(f64::from(prog.delivery_pct) / 100.0) {
        shop_price([5.0, 8.0, 10.0, 15.0, 25.0][rng.random_range(0..5)], cur, false)
    } else {
        0
    };
    let duties = if ctry.duties && rng.random_bool(0.12) { goods * rng.random_range(4..=16) / 100 } else { 0 };
    let total = goods + delivery + duties;

    let channel = pick(rng, prog.channels.iter().copied());
    let method = primary_method(rng, m.program, ctry, channel);
    let voucher = if rng.random_bool(0.06) {
        let v = shop_price([50.0, 100.0, 150.0, 250.0, 500.0, 1000.0][rng.random_range(0..6)], cur, false);
        v.min(total)
    } else {
        0
    };

    // The event.
    em.begin("order.placed", at, program);
    em.member(member);
    em.order_field(order);
    em.str_field("currency", cur.code);
    em.str_field("channel", ["web", "app", "store"][channel]);
    em.buf.extend_from_slice(b",\"lines\":[");
    for (li, l) in lines.iter().enumerate() {
        if li > 0 {
            em.buf.push(b',');
        }
        em.buf.extend_from_slice(b"{\"line\":\"");
        push_uint(&mut em.buf, li as u64 + 1, 1);
        em.buf.extend_from_slice(b"\",\"sku\":\"");
        em.buf.extend_from_slice(prog.sku_prefix.as_bytes());
        push_uint(&mut em.buf, l.product, 6);
        em.buf.push(b'"');
        em.str_field("brand", prog.brands[l.brand as usize]);
        em.str_field("category", prog.categories[l.category as usize].id);
        em.buf.extend_from_slice(b",\"quantity\":");
        push_uint(&mut em.buf, u64::from(l.qty), 1);
        em.amount_field("price", l.price, cur.digits);
        if l.discount > 0 {
            em.amount_field("discount", l.discount, cur.digits);
        }
        if l.tax > 0 {
            em.amount_field("tax", l.tax, cur.digits);
        }
        if l.on_sale {
            em.buf.extend_from_slice(b",\"on_sale\":true");
        }
        em.buf.push(b'}');
    }
    em.buf.push(b']');
    if delivery > 0 {
        em.amount_field("delivery", delivery, cur.digits);
    }
    if duties > 0 {
        em.amount_field("duties", duties, cur.digits);
    }
    em.buf.extend_from_slice(b",\"payments\":[");
    let mut first = true;
    for (meth, amount) in [(method, total - voucher), ("gift_voucher", voucher)] {
        if amount > 0 {
            if !first {
                em.buf.push(b',');
            }
            first = false;
            em.buf.extend_from_slice(b"{\"method\":\"");
            em.buf.extend_from_slice(meth.as_bytes());
            em.buf.push(b'"');
            em.amount_field("amount", amount, cur.digits);
            em.buf.push(b'}');
        }
    }
    em.buf.push(b']');
    em.end(true)?;

    // What happens to it next.
    let mut qty = [0u8; MAX_LINES];
    for (q, l) in qty.iter_mut().zip(lines.iter()) {
        *q = l.qty;
    }
    let units: u32 = qty.iter().map(|&q| u32::from(q)).sum();
    let fate: f64 = rng.random();
    if fate < 0.03 {
        let partial = units > 1 && rng.random_bool(0.3);
        m.tracks.push(Track {
            at: at + rng.random_range(5 * MINUTE..20 * HOUR),
            order,
            qty,
            stage: Stage::Cancel { partial },
        });
    } else if fate < 0.04 {
        // Never delivered.
    } else {
        m.tracks.push(Track { at: at + rng.random_range(DAY..7 * DAY), order, qty, stage: Stage::Deliver });
    }
    Ok(())
}

fn primary_method(rng: &mut ChaCha8Rng, program: u8, ctry: &Country, channel: usize) -> &'static str {
    const STORE: usize = 2;
    if program == 2 {
        if channel == STORE {
            ["card", "cash"][pick(rng, [65, 35].into_iter())]
        } else {
            ["card", "bank_transfer"][pick(rng, [85, 15].into_iter())]
        }
    } else if channel == STORE {
        ["card", "apple_pay", "cash"][pick(rng, [85, 10, 5].into_iter())]
    } else {
        let k = pick(rng, [66, 12, 12, 6, 4].into_iter());
        match k {
            0 => "card",
            1 => "paypal",
            2 => "apple_pay",
            3 if ctry.klarna => "klarna",
            3 => "card",
            _ => "bank_transfer",
        }
    }
}

/// Emits the track's event (cancellation, delivery or return) and schedules what
/// follows it.
fn advance_track<W: Write>(
    em: &mut Emitter<'_, W>,
    rng: &mut ChaCha8Rng,
    m: &mut Member,
    k: usize,
    at: i64,
    program: Option<&'static str>,
) -> io::Result<()> {
    let t = &mut m.tracks[k];
    let done = match t.stage {
        Stage::Cancel { partial: false } => {
            em.begin("order.cancelled", at, program);
            em.order_field(t.order);
            em.end(true)?;
            true
        }
        Stage::Cancel { partial: true } => {
            let mut cancel = [0u8; MAX_LINES];
            let mut left: u32 = t.qty.iter().map(|&q| u32::from(q)).sum();
            for (c, &q) in cancel.iter_mut().zip(t.qty.iter()) {
                if q > 0 && left > 1 && rng.random_bool(0.5) {
                    let n = rng.random_range(1..=q).min((left - 1) as u8);
                    *c = n;
                    left -= u32::from(n);
                }
            }
            if cancel.iter().all(|&c| c == 0) {
                // At least two units were bought: cancel one.
                let first = t.qty.iter().position(|&q| q > 0).expect("units");
                cancel[first] = 1;
            }
            em.begin("order.cancelled", at, program);
            em.order_field(t.order);
            em.line_quantities(&cancel);
            em.end(true)?;
            for (q, c) in t.qty.iter_mut().zip(cancel) {
                *q -= c;
            }
            t.stage = Stage::Deliver;
            t.at = at + rng.random_range(DAY..6 * DAY);
            false
        }
        Stage::Deliver => {
            em.begin("order.delivered", at, program);
            em.order_field(t.order);
            em.end(true)?;
            if rng.random_bool(0.21) {
                t.stage = Stage::Return;
                t.at = at + rng.random_range(3 * DAY..25 * DAY);
                false
            } else {
                true
            }
        }
        Stage::Return => {
            let mut ret = [0u8; MAX_LINES];
            if rng.random_bool(0.4) {
                ret = t.qty;
            } else {
                for (r, &q) in ret.iter_mut().zip(t.qty.iter()) {
                    if q > 0 && rng.random_bool(0.5) {
                        *r = rng.random_range(1..=q);
                    }
                }
                if ret.iter().all(|&r| r == 0) {
                    let first = t.qty.iter().position(|&q| q > 0).expect("units");
                    ret[first] = 1;
                }
            }
            em.begin("order.returned", at, program);
            em.order_field(t.order);
            em.line_quantities(&ret);
            em.end(true)?;
            for (q, r) in t.qty.iter_mut().zip(ret) {
                *q -= r;
            }
            if t.qty.iter().any(|&q| q > 0) && rng.random_bool(0.12) {
                t.at = at + rng.random_range(DAY..10 * DAY);
                false
            } else {
                true
            }
        }
    };
    if done {
        m.tracks.swap_remove(k);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Output

struct Emitter<'w, W: Write> {
    out: BufWriter<&'w mut W>,
    buf: Vec<u8>,
    /// Late events: lines still to let pass, and the event.
    delayed: Vec<(u32, Vec<u8>)>,
    late_rng: ChaCha8Rng,
    late_per_mille: u32,
    events: u64,
}

impl<W: Write> Emitter<'_, W> {
    fn begin(&mut self, ty: &str, at: i64, program: Option<&str>) {
        self.events += 1;
        let b = &mut self.buf;
        b.clear();
        b.extend_from_slice(b"{\"id\":\"e-");
        push_uint(b, self.events, 8);
        b.extend_from_slice(b"\",\"type\":\"");
        b.extend_from_slice(ty.as_bytes());
        b.extend_from_slice(b"\",\"at\":\"");
        push_instant(b, at);
        b.push(b'"');
        if let Some(p) = program {
            self.str_field("program", p);
        }
    }

    fn str_field(&mut self, name: &str, value: &str) {
        let b = &mut self.buf;
        b.extend_from_slice(b",\"");
        b.extend_from_slice(name.as_bytes());
        b.extend_from_slice(b"\":\"");
        b.extend_from_slice(value.as_bytes());
        b.push(b'"');
    }

    fn amount_field(&mut self, name: &str, minor: i64, digits: u32) {
        let b = &mut self.buf;
        b.extend_from_slice(b",\"");
        b.extend_from_slice(name.as_bytes());
        b.extend_from_slice(b"\":\"");
        push_amount(b, minor, digits);
        b.push(b'"');
    }

    fn member(&mut self, i: u32) {
        self.buf.extend_from_slice(b",\"member\":\"m-");
        push_uint(&mut self.buf, u64::from(i) + 1, 6);
        self.buf.push(b'"');
    }

    fn order_field(&mut self, order: u64) {
        self.buf.extend_from_slice(b",\"order\":\"o-");
        push_uint(&mut self.buf, order, 7);
        self.buf.push(b'"');
    }

    fn line_quantities(&mut self, q: &[u8; MAX_LINES]) {
        let b = &mut self.buf;
        b.extend_from_slice(b",\"lines\":[");
        let mut first = true;
        for (li, &n) in q.iter().enumerate() {
            if n > 0 {
                if !first {
                    b.push(b',');
                }
                first = false;
                b.extend_from_slice(b"{\"line\":\"");
                push_uint(b, li as u64 + 1, 1);
                b.extend_from_slice(b"\",\"quantity\":");
                push_uint(b, u64::from(n), 1);
                b.push(b'}');
            }
        }
        b.push(b']');
    }

    /// Closes the event and writes it, or holds it back a few lines (a late arrival)
    /// when `may_delay`.
    fn end(&mut self, may_delay: bool) -> io::Result<()> {
        self.buf.extend_from_slice(b"}\n");
        if may_delay && self.late_per_mille > 0 && self.late_rng.random_range(0..1000) < self.late_per_mille {
            let lines = self.late_rng.random_range(1..=5);
            self.delayed.push((lines, self.buf.clone()));
            return Ok(());
        }
        self.out.write_all(&self.buf)?;
        if !self.delayed.is_empty() {
            for d in &mut self.delayed {
                d.0 -= 1;
            }
            // Write those due, in the order they were held back.
            let mut k = 0;
            while k < self.delayed.len() {
                if self.delayed[k].0 == 0 {
                    let (_, line) = self.delayed.remove(k);
                    self.out.write_all(&line)?;
                } else {
                    k += 1;
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        for (_, line) in self.delayed.drain(..) {
            self.out.write_all(&line)?;
        }
        self.out.flush()
    }
}

fn push_uint(b: &mut Vec<u8>, mut v: u64, width: usize) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let len = tmp.len() - i;
    for _ in len..width {
        b.push(b'0');
    }
    b.extend_from_slice(&tmp[i..]);
}

/// `minor` minor units with exactly `digits` decimals ("123.45", "12.345").
fn push_amount(b: &mut Vec<u8>, minor: i64, digits: u32) {
    debug_assert!(minor >= 0);
    let unit = 10u64.pow(digits);
    let minor = minor as u64;
    push_uint(b, minor / unit, 1);
    if digits > 0 {
        b.push(b'.');
        push_uint(b, minor % unit, digits as usize);
    }
}

/// RFC 3339 UTC, whole seconds: "2024-03-05T14:22:07Z".
fn push_instant(b: &mut Vec<u8>, t: i64) {
    let dt = civil(t);
    push_date(b, dt.date());
    b.push(b'T');
    push_uint(b, dt.hour() as u64, 2);
    b.push(b':');
    push_uint(b, dt.minute() as u64, 2);
    b.push(b':');
    push_uint(b, dt.second() as u64, 2);
    b.push(b'Z');
}

fn push_date(b: &mut Vec<u8>, d: Date) {
    push_uint(b, d.year() as u64, 4);
    b.push(b'-');
    push_uint(b, d.month() as u64, 2);
    b.push(b'-');
    push_uint(b, d.day() as u64, 2);
}

#[cfg(test)]
mod tests;
