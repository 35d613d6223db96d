//! Crash-safe file replacement: temp file in the same directory, fsync, rename, fsync of the
//! directory, mode 0600. A crash at any point leaves the old file or the new one.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static SAVES: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` with `contents` atomically; parent directories are created.
pub fn write(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir)?;
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    // Unique per process and per save, so concurrent saves never share a temp file.
    let temp = dir.join(format!(
        ".{}.{}.{}.tmp",
        file_name.as_deref().unwrap_or("tokens"),
        std::process::id(),
        SAVES.fetch_add(1, Ordering::Relaxed)
    ));
    let result = write_synced(&temp, contents)
        .and_then(|()| fs::rename(&temp, path))
        .and_then(|()| fs::File::open(&dir)?.sync_all());
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

fn write_synced(temp: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(temp)?;
    // `mode` applies only when the file is created; a leftover temp file keeps its mode.
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Removes temp files that a crash between write and rename left beside `path`.
pub fn remove_stale_temp_files(path: &Path) -> io::Result<()> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(());
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if file_name.starts_with(&prefix) && file_name.ends_with(".tmp") {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temp_files_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("tokens.json");
        write(&path, b"{}").expect("write");
        fs::write(dir.path().join(".tokens.json.123.0.tmp"), b"torn").expect("temp");
        fs::write(dir.path().join("other.tmp"), b"keep").expect("other");

        remove_stale_temp_files(&path).expect("cleanup");

        let mut names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["other.tmp", "tokens.json"]);
    }
}
