//! Random bodies through the real router over HTTP, for every dialect: the router never panics,
//! answers every request with an allowed status and, for errors, an OpenAI error body, and is
//! still healthy afterwards. Seeded, bounded in count and time.

mod support;

use std::time::Duration;

use disagg_proto::ApiError;
use disagg_router::Dialect;
use support::bodies::{Rng, body};
use support::{config_dialect, fake, router};

const BODIES_PER_DIALECT: usize = 300;
const LIMIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn random_bodies_get_honest_answers_and_no_panic() {
    let client = reqwest::Client::new();
    for (seed, dialect) in [
        (1, Dialect::Trtllm),
        (2, Dialect::Vllm),
        (3, Dialect::Sglang),
    ] {
        let mut prefill = fake("prefill");
        if dialect == Dialect::Sglang {
            prefill = prefill.sglang_prefill();
        }
        let prefill = prefill.start().await;
        let decode = fake("decode").start().await;
        let mut cfg = config_dialect(dialect, &[&prefill], &[&decode]);
        cfg.max_body_bytes = 4096;
        let url = router(cfg).await;
        let mut rng = Rng::new(seed);
        for n in 0..BODIES_PER_DIALECT {
            let b = body(&mut rng);
            let path = if rng.below(2) == 0 {
                "/v1/completions"
            } else {
                "/v1/chat/completions"
            };
            let send = client.post(format!("{url}{path}")).body(b.clone()).send();
            let resp = tokio::time::timeout(LIMIT, send)
                .await
                .unwrap_or_else(|_| {
                    panic!("{dialect:?} #{n} hung: {}", String::from_utf8_lossy(&b))
                })
                .unwrap();
            let status = resp.status().as_u16();
            let text = resp.bytes().await.unwrap();
            // The fakes answer anything well formed with 200 (or 422 when it reaches a fake
            // whose parser rejects it); everything else must be the router's own 400.
            assert!(
                matches!(status, 200 | 400 | 422),
                "{dialect:?} #{n}: {status} for {}: {}",
                String::from_utf8_lossy(&b),
                String::from_utf8_lossy(&text)
            );
            if status != 200 {
                assert!(
                    ApiError::from_body(status, &text).is_some(),
                    "{dialect:?} #{n}: error body {}",
                    String::from_utf8_lossy(&text)
                );
            }
        }
        let health = reqwest::get(format!("{url}/health")).await.unwrap();
        assert_eq!(health.status(), 200, "{dialect:?}: still serving");
    }
}
