//! A small, seeded generator of hostile request bodies: JSON built from the fields the router
//! looks at, with random types, then sometimes mangled at the byte level. Fixed seeds keep every
//! failure reproducible; no external fuzzing crate needed.

use serde_json::{Map, Value, json};

/// xorshift64*: tiny, fast, and good enough to explore input shapes.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const KEYS: [&str; 12] = [
    "prompt",
    "messages",
    "stream",
    "max_tokens",
    "stream_options",
    "model",
    "min_tokens",
    "kv_transfer_params",
    "disaggregated_params",
    "bootstrap_room",
    "max_completion_tokens",
    "str\\u0065am",
];

fn value(rng: &mut Rng, depth: u32) -> Value {
    match rng.below(if depth > 2 { 6 } else { 8 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => json!(rng.next() as i64),
        3 => json!(rng.below(1000)),
        4 => json!(-(rng.below(10) as f64) / 3.0),
        5 => Value::String(
            (0..rng.below(20))
                .map(|_| char::from_u32(rng.below(0x3000) as u32).unwrap_or('x'))
                .collect(),
        ),
        6 => Value::Array((0..rng.below(5)).map(|_| value(rng, depth + 1)).collect()),
        _ => object(rng, depth + 1),
    }
}

fn object(rng: &mut Rng, depth: u32) -> Value {
    let mut m = Map::new();
    for _ in 0..rng.below(7) {
        let k = KEYS[rng.below(KEYS.len() as u64) as usize].to_string();
        m.insert(k, value(rng, depth));
    }
    Value::Object(m)
}

/// One body: usually an object of router-relevant keys, sometimes anything, sometimes broken.
pub fn body(rng: &mut Rng) -> Vec<u8> {
    let v = if rng.below(5) == 0 {
        value(rng, 0)
    } else {
        object(rng, 0)
    };
    let mut bytes = serde_json::to_vec(&v).unwrap();
    match rng.below(6) {
        0 if !bytes.is_empty() => {
            let cut = rng.below(bytes.len() as u64) as usize;
            bytes.truncate(cut);
        }
        1 if !bytes.is_empty() => {
            let at = rng.below(bytes.len() as u64) as usize;
            bytes[at] = rng.below(256) as u8;
        }
        2 => {
            let at = rng.below(bytes.len() as u64 + 1) as usize;
            let junk = [b'{', b'}', b'"', b'\\', b',', b':', b'[', 0xff][rng.below(8) as usize];
            bytes.insert(at, junk);
        }
        _ => {}
    }
    bytes
}
