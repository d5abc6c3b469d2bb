//! The few OpenAI completion shapes every part agrees on.

use serde::{Deserialize, Serialize};

/// Token accounting as servers report it in `usage`. `total_tokens` may be left out (clients
/// such as vLLM's benchmark read only the other two), and is then their sum.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl<'de> Deserialize<'de> for Usage {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Given {
            prompt_tokens: u64,
            completion_tokens: u64,
            #[serde(default)]
            total_tokens: Option<u64>,
        }
        let g = Given::deserialize(d)?;
        Ok(Self {
            prompt_tokens: g.prompt_tokens,
            completion_tokens: g.completion_tokens,
            total_tokens: g
                .total_tokens
                .unwrap_or(g.prompt_tokens + g.completion_tokens),
        })
    }
}

impl Usage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }
}

/// A completions `prompt`: text, or a list of token ids.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Prompt {
    Text(String),
    Tokens(Vec<u32>),
}

/// A count as the engines' pydantic models take it: an integer, or a float with no fraction
/// (`2.0`, `1e1`), never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Whole(pub u64);

impl<'de> serde::Deserialize<'de> for Whole {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = Whole;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a non-negative whole number")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Whole, E> {
                Ok(Whole(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Whole, E> {
                u64::try_from(v)
                    .map(Whole)
                    .map_err(|_| E::custom("negative"))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Whole, E> {
                if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= u64::MAX as f64 {
                    Ok(Whole(v as u64))
                } else {
                    Err(E::custom("not a whole number"))
                }
            }
        }
        d.deserialize_any(Visit)
    }
}

/// A whole number that may be negative (`top_k: -1`), taken as pydantic takes an `int` field:
/// an integer, or a float with no fraction (`5.0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedWhole(pub i64);

impl<'de> serde::Deserialize<'de> for SignedWhole {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = SignedWhole;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a whole number")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<SignedWhole, E> {
                i64::try_from(v)
                    .map(SignedWhole)
                    .map_err(|_| E::custom("too large"))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<SignedWhole, E> {
                Ok(SignedWhole(v))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<SignedWhole, E> {
                let whole = v.is_finite() && v.fract() == 0.0;
                if whole && v >= i64::MIN as f64 && v <= i64::MAX as f64 {
                    Ok(SignedWhole(v as i64))
                } else {
                    Err(E::custom("not a whole number"))
                }
            }
        }
        d.deserialize_any(Visit)
    }
}
