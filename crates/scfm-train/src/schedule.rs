//! Learning-rate schedules used upstream.

use serde::{Deserialize, Serialize};

/// A learning-rate schedule, as a function of the optimiser step (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LrSchedule {
    /// Linear warm-up from 0 over `warmup` steps, then the peak rate.
    Constant { warmup: u64 },
    /// Linear warm-up from 0 over `warmup` steps, then linear decay to 0 at `total`
    /// (transformers' `get_linear_schedule_with_warmup`; Geneformer and scBERT fine-tuning).
    Linear { warmup: u64, total: u64 },
    /// Linear warm-up, then half a cosine to 0 at `total`
    /// (`get_cosine_schedule_with_warmup`).
    Cosine { warmup: u64, total: u64 },
    /// Multiply by `gamma` every `step_size` steps (PyTorch `StepLR`; scGPT, scBERT).
    Step { step_size: u64, gamma: f64 },
}

impl LrSchedule {
    /// The rate at `step` for peak rate `peak`.
    pub fn rate(&self, peak: f64, step: u64) -> f64 {
        let warm = |warmup: u64| if step < warmup { Some(step as f64 / warmup.max(1) as f64) } else { None };
        match *self {
            Self::Constant { warmup } => peak * warm(warmup).unwrap_or(1.0),
            Self::Linear { warmup, total } => {
                peak * warm(warmup)
                    .unwrap_or_else(|| (total.saturating_sub(step)) as f64 / total.saturating_sub(warmup).max(1) as f64)
            }
            Self::Cosine { warmup, total } => {
                peak * warm(warmup).unwrap_or_else(|| {
                    let progress = (step - warmup) as f64 / total.saturating_sub(warmup).max(1) as f64;
                    (0.5 * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos())).max(0.0)
                })
            }
            Self::Step { step_size, gamma } => peak * gamma.powi((step / step_size.max(1)) as i32),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_follow_their_formulas() {
        let l = LrSchedule::Linear { warmup: 10, total: 110 };
        assert_eq!(l.rate(1.0, 0), 0.0);
        assert_eq!(l.rate(1.0, 5), 0.5);
        assert_eq!(l.rate(1.0, 10), 1.0);
        assert_eq!(l.rate(1.0, 60), 0.5);
        assert_eq!(l.rate(1.0, 200), 0.0);
        let c = LrSchedule::Cosine { warmup: 0, total: 100 };
        assert!((c.rate(2.0, 50) - 1.0).abs() < 1e-12);
        let s = LrSchedule::Step { step_size: 10, gamma: 0.5 };
        assert_eq!(s.rate(1.0, 25), 0.25);
    }
}
