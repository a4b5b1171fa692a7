//! The state directory on disk: private to the user who runs custsync, and never reached
//! through a link. The store holds customers' names and addresses, and a run may be made by
//! root: a directory or file another user can read leaks them, and one another user can write
//! (or a link planted in it) lets that user make the run overwrite any file.
//!
//! So [`check`] refuses a state directory that is not the user's own or that group or others
//! may read or write, and any entry in it that is a link or someone else's, with the fix in the
//! message (the user's own entries with loose modes, unreachable behind the private directory,
//! are made private). What custsync creates is created private (directories
//! 0700, files 0600) and opened without following links; a file is replaced by writing a new
//! temporary file (created new, never opened through whatever was there) and renaming it over
//! the old one. sled takes no file mode, so [`tighten`] makes its files private once it has
//! created them, inside a directory that is already private.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::StateError;

/// Group and other permission bits.
const SHARED: u32 = 0o077;

/// Creates `dir` (and its missing parents) readable by its owner only.
pub(super) fn create_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Refuses `dir` unless it is private to this user, and any entry in it that is a link or
/// someone else's; this user's entries with loose modes are made private. See the module doc.
pub(super) fn check(dir: &Path) -> Result<(), StateError> {
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| StateError::Io { path, source }
    };
    // Followed: `--state` may name a link to the real directory, which is what is checked.
    let meta = fs::metadata(dir).map_err(io_err(dir))?;
    if !meta.is_dir() {
        return Err(StateError::Io {
            path: dir.to_owned(),
            source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    let me = euid();
    if let Some(why) = exposure(dir, &meta, me, dir) {
        return Err(why);
    }
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        let meta = fs::symlink_metadata(&path).map_err(io_err(&path))?;
        if meta.file_type().is_symlink() {
            return Err(StateError::Exposed {
                why: "is a symbolic link, and custsync never follows links in its state \
                      directory"
                    .to_owned(),
                fix: format!("remove it: rm {}", path.display()),
                path,
            });
        }
        // Inside a directory only this user can enter, a loose mode exposes nothing yet (a
        // store from before this check has 0644 sled files): make it private rather than stop a
        // nightly run over it. Someone else's entry stays refused.
        if meta.uid() == me && meta.mode() & SHARED != 0 {
            tracing::warn!("making {} private to its owner", path.display());
            let private = if meta.is_dir() {
                tighten(&path).map(|()| 0o700)
            } else {
                Ok(0o600)
            };
            private
                .and_then(|mode| fs::set_permissions(&path, fs::Permissions::from_mode(mode)))
                .map_err(io_err(&path))?;
            continue;
        }
        if let Some(why) = exposure(&path, &meta, me, dir) {
            return Err(why);
        }
    }
    Ok(())
}

/// Why `path` (with `meta`, in the state directory `dir` or `dir` itself) is open to users
/// other than `me`, and the fix, if it is.
fn exposure(path: &Path, meta: &fs::Metadata, me: u32, dir: &Path) -> Option<StateError> {
    let (why, fix) = if meta.uid() != me {
        let why = format!(
            "belongs to user id {}, not to the user running custsync ({me}), so that user can \
             change it",
            meta.uid()
        );
        (
            why,
            "use a state directory of your own (--state)".to_owned(),
        )
    } else if meta.mode() & SHARED != 0 {
        let why = format!(
            "has mode {:o}, so other users can read or change the customers' data in it",
            meta.mode() & 0o777
        );
        let fix = if path == dir {
            format!("fix: chmod 700 {}", dir.display())
        } else {
            let mode = if meta.is_dir() { 700 } else { 600 };
            format!(
                "fix: chmod {mode} {} (or, for everything in the directory: chmod -R go-rwx {})",
                path.display(),
                dir.display()
            )
        };
        (why, fix)
    } else {
        return None;
    };
    Some(StateError::Exposed {
        path: path.to_owned(),
        why,
        fix,
    })
}

/// The effective user id of this process.
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions, touches no memory of ours and cannot fail.
    unsafe { libc::geteuid() }
}

/// Makes every file under `dir` 0600 and every directory 0700 (links are left alone: a mode
/// set through one would change its target).
pub(super) fn tighten(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let meta = fs::symlink_metadata(&path)?;
        let mode = if meta.is_dir() {
            tighten(&path)?;
            0o700
        } else if meta.is_file() {
            0o600
        } else {
            continue;
        };
        if meta.mode() & 0o777 != mode {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
        }
    }
    if fs::symlink_metadata(dir)?.mode() & SHARED != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Opens (creating it 0600) a file to read and write, failing on a link instead of following it.
pub(super) fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Opens a file to read, failing on a link instead of following it.
pub(super) fn open_read(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Replaces `path` with what `write` writes, durably: into `path` + `.tmp` (a stale one, or
/// whatever a link there pointed to, is removed, never written through), synced, then renamed
/// over `path` (which replaces a link at `path` instead of following it).
pub(super) fn replace(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<&File>) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = tmp_path(path);
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    let mut w = BufWriter::with_capacity(1 << 16, &file);
    write(&mut w)?;
    w.flush()?;
    drop(w);
    file.sync_all()?;
    fs::rename(&tmp, path)
}

/// The temporary file [`replace`] writes for `path`.
fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).expect("meta").mode() & 0o777
    }

    #[test]
    fn a_directory_or_entry_others_can_reach_is_refused_with_the_fix() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("state");
        create_dir(&dir).expect("create");
        assert_eq!(mode(&dir), 0o700);
        check(&dir).expect("a fresh directory is private");

        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).expect("chmod");
        let msg = check(&dir).expect_err("0777").to_string();
        assert!(msg.contains("mode 777"), "{msg}");
        assert!(
            msg.contains(&format!("chmod 700 {}", dir.display())),
            "{msg}"
        );
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o750)).expect("chmod");
        assert!(check(&dir).is_err(), "group may read");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod");

        // Inside the private directory, loose entries of this user's are made private.
        let file = dir.join("index.bin");
        fs::write(&file, b"x").expect("write");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).expect("chmod");
        let sub = dir.join("db");
        fs::create_dir(&sub).expect("mkdir");
        fs::set_permissions(&sub, fs::Permissions::from_mode(0o755)).expect("chmod");
        check(&dir).expect("loose entries in a private directory are tightened");
        assert_eq!((mode(&file), mode(&sub)), (0o600, 0o700));
        tighten(&dir).expect("tighten");
        check(&dir).expect("tightened");

        std::os::unix::fs::symlink(root.path().join("victim"), dir.join("lock")).expect("ln");
        let msg = check(&dir).expect_err("a link").to_string();
        assert!(msg.contains("symbolic link"), "{msg}");
    }

    #[test]
    fn tighten_makes_files_0600_and_directories_0700_without_following_links() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("db");
        fs::create_dir_all(dir.join("blobs")).expect("mkdir");
        fs::write(dir.join("conf"), b"x").expect("write");
        let outside = root.path().join("outside");
        fs::write(&outside, b"x").expect("write");
        fs::set_permissions(&outside, fs::Permissions::from_mode(0o644)).expect("chmod");
        std::os::unix::fs::symlink(&outside, dir.join("link")).expect("ln");
        for p in [&dir, &dir.join("blobs")] {
            fs::set_permissions(p, fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        fs::set_permissions(dir.join("conf"), fs::Permissions::from_mode(0o644)).expect("chmod");
        tighten(&dir).expect("tighten");
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("blobs")), 0o700);
        assert_eq!(mode(&dir.join("conf")), 0o600);
        assert_eq!(mode(&outside), 0o644, "a link's target is not touched");
    }

    #[test]
    fn opening_and_replacing_never_follow_a_link() {
        let root = tempfile::tempdir().expect("tempdir");
        let victim = root.path().join("victim");
        fs::write(&victim, b"precious").expect("write");
        let lock = root.path().join("lock");
        std::os::unix::fs::symlink(&victim, &lock).expect("ln");
        assert!(open_rw(&lock).is_err(), "a link is not opened");
        assert!(open_read(&lock).is_err(), "nor read");

        let index = root.path().join("index.bin");
        std::os::unix::fs::symlink(&victim, tmp_path(&index)).expect("ln");
        replace(&index, |w| w.write_all(b"new")).expect("replace");
        assert_eq!(fs::read(&victim).expect("read"), b"precious");
        assert_eq!(fs::read(&index).expect("read"), b"new");
        assert_eq!(mode(&index), 0o600);
        assert!(!tmp_path(&index).exists());

        std::os::unix::fs::symlink(&victim, root.path().join("mark")).expect("ln");
        replace(&root.path().join("mark"), |w| w.write_all(b"m")).expect("replace");
        assert_eq!(
            fs::read(&victim).expect("read"),
            b"precious",
            "a link is replaced"
        );
    }
}
