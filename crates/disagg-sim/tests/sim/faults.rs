//! Scripted crashes fire exactly after the N-th served request.

use serde_json::json;
use tokio::sync::mpsc::error::TryRecvError;

use crate::support::start;

#[tokio::test]
async fn fail_after_requests_fires_the_exit_hook_after_the_nth() {
    let mut sim = start(&["--fail-after-requests", "3", "--itl", "1ms"]).await;
    let req = json!({"prompt": [1, 2, 3], "max_tokens": 2});

    // A rejected request is not "served".
    let (status, _) = sim.complete(&json!({"prompt": 5})).await;
    assert_eq!(status, 400);

    for _ in 0..2 {
        let (status, body) = sim.complete(&req).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(sim.exits.try_recv(), Err(TryRecvError::Empty));

    // The third is streamed: it counts once its last frame is handed over.
    let (_, events) = sim
        .stream(&json!({"prompt": [1, 2, 3], "max_tokens": 2, "stream": true}))
        .await;
    assert_eq!(events.len(), 3);
    tokio::time::timeout(std::time::Duration::from_secs(10), sim.exits.recv())
        .await
        .expect("exit hook fired")
        .expect("hook channel open");
    assert_eq!(sim.exits.try_recv(), Err(TryRecvError::Empty), "fires once");
}
