//! The progress bar and Ctrl-C.
//!
//! A SIGINT handler only sets an atomic flag (all a handler may safely do)
//! and resets itself to the default, so a second Ctrl-C kills at once. A
//! monitor thread polls that flag every [`TICK`], sets the run's `stop`
//! flag, and when stderr is a terminal redraws one line with `\r`:
//! `  4096 / 10000 [=========>          ]  40.96% 1.2s`.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the bar is redrawn and the interrupt flag looked at.
pub const TICK: Duration = Duration::from_millis(100);
/// Characters between the bar's brackets.
const BAR_WIDTH: usize = 40;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_signal: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Routes SIGINT to `INTERRUPTED` (once; the second one is fatal).
pub fn install_interrupt_handler() {
    // SAFETY: a zeroed sigaction is valid; the handler only stores to an
    // atomic, which is async-signal-safe; sigemptyset and sigaction get
    // pointers to our own struct.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART | libc::SA_RESETHAND;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
    }
}

/// The running monitor thread.
pub struct Progress {
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the monitor: `completed` of `total` results so far.
pub fn start(total: usize, completed: Arc<AtomicUsize>, stop: Arc<AtomicBool>) -> Progress {
    // SAFETY: isatty only inspects the descriptor.
    let draw = unsafe { libc::isatty(libc::STDERR_FILENO) } == 1;
    let done = Arc::new(AtomicBool::new(false));
    let thread = {
        let done = done.clone();
        std::thread::Builder::new()
            .name("keel-bench-progress".into())
            .spawn(move || {
                let started = Instant::now();
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    if INTERRUPTED.load(Ordering::SeqCst) {
                        stop.store(true, Ordering::Relaxed);
                    }
                    if draw {
                        let line =
                            render(completed.load(Ordering::Relaxed), total, started.elapsed());
                        let mut stderr = std::io::stderr().lock();
                        let _ = write!(stderr, "\r{line}");
                        if finished {
                            let _ = writeln!(stderr);
                        }
                        let _ = stderr.flush();
                    }
                    if finished {
                        break;
                    }
                    std::thread::sleep(TICK);
                }
            })
            .expect("spawn the progress thread")
    };
    Progress {
        done,
        thread: Some(thread),
    }
}

impl Progress {
    /// Draws the last state, stops the thread; whether Ctrl-C was pressed.
    pub fn finish(mut self) -> bool {
        self.done.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        INTERRUPTED.load(Ordering::SeqCst)
    }
}

/// One line of progress.
pub fn render(completed: usize, total: usize, elapsed: Duration) -> String {
    let fraction = if total == 0 {
        1.0
    } else {
        (completed as f64 / total as f64).min(1.0)
    };
    let filled = (fraction * BAR_WIDTH as f64) as usize;
    let mut bar = "=".repeat(filled);
    if filled < BAR_WIDTH {
        bar.push('>');
        bar.push_str(&" ".repeat(BAR_WIDTH - filled - 1));
    }
    let width = total.to_string().len();
    format!(
        "{completed:>width$} / {total} [{bar}] {:6.2}% {:.1}s",
        fraction * 100.0,
        elapsed.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_fills_with_progress() {
        let line = render(250, 1000, Duration::from_millis(1500));
        assert_eq!(
            line,
            format!(
                " 250 / 1000 [{}>{}]  25.00% 1.5s",
                "=".repeat(10),
                " ".repeat(29)
            )
        );
        let full = render(1000, 1000, Duration::from_secs(2));
        assert!(full.contains(&format!("[{}]", "=".repeat(40))), "{full}");
        assert!(full.contains("100.00%"), "{full}");
        assert!(render(5, 0, Duration::ZERO).contains("100.00%"));
    }
}
