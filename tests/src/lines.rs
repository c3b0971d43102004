//! Waiting for a line another process or task writes to a file.

use std::path::Path;
use std::time::Duration;

use crate::eventually_async;

/// The first line of `text` that contains `needle`.
pub fn first_line(text: &str, needle: &str) -> Option<String> {
    text.lines().find(|l| l.contains(needle)).map(str::to_owned)
}

/// Polls the file at `path` until a line contains `needle` and returns that
/// line; panics after `timeout`. A file that does not exist yet counts as
/// empty.
pub async fn wait_for_line(path: &Path, needle: &str, timeout: Duration) -> String {
    let what = format!("a line containing {needle:?} in {}", path.display());
    eventually_async(&what, timeout, || async {
        first_line(&std::fs::read_to_string(path).ok()?, needle)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_finds_the_first_match_only() {
        assert_eq!(first_line("a\nb x\nc x\n", "x").as_deref(), Some("b x"));
        assert_eq!(first_line("a\nb\n", "x"), None);
    }

    #[tokio::test]
    async fn wait_for_line_sees_a_line_written_later() {
        let dir = crate::tempdir();
        let path = dir.path().join("log");
        let writer = {
            let path = path.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                std::fs::write(&path, "starting\nready on 1234\n")
                    .unwrap_or_else(|e| panic!("{e}"));
            })
        };
        let line = wait_for_line(&path, "ready", Duration::from_secs(10)).await;
        assert_eq!(line, "ready on 1234");
        writer.await.unwrap_or_else(|e| panic!("{e}"));
    }

    #[tokio::test]
    #[should_panic(expected = "timed out")]
    async fn wait_for_line_is_bounded() {
        let dir = crate::tempdir();
        wait_for_line(&dir.path().join("never"), "x", Duration::from_millis(50)).await;
    }
}
