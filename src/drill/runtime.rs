//! Where drills run: a tokio runtime of their own, so planning and scanning a table — CPU-bound
//! work that can take seconds without yielding — never holds up the service's HTTP endpoints,
//! timers and signal handling, which stay on the caller's runtime.

use std::future::Future;
use std::sync::OnceLock;

use tokio_util::task::AbortOnDropHandle;

/// The drill runtime: one worker per core, created on first use and kept for the process.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .thread_name("restore-drill-drill")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the drill runtime: {e}"))
    })
}

/// Runs `work` on the drill runtime and waits for it. Dropping the returned future cancels the
/// work at its next await; a panic inside it resumes in the caller.
pub(crate) async fn isolated<T: Send + 'static>(
    work: impl Future<Output = T> + Send + 'static,
) -> T {
    let handle = AbortOnDropHandle::new(runtime().spawn(work));
    match handle.await {
        Ok(value) => value,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Only the drop of this future aborts the task, and then nobody waits here.
        Err(e) => unreachable!("the drill task ended without a result: {e}"),
    }
}
