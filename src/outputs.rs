//! The files a command writes for its user (the report, the summary JSON, the absent list, a
//! state export): where they may go, how they are opened, and what a spreadsheet may not read
//! into their cells. Every writer takes its file from here.
//!
//! # An output never destroys an input
//! A mistyped flag (`--report customers.csv`) must not eat the file the run reads. So every
//! output of a run is claimed together, before anything is sent ([`claim`]), and refused (the
//! run stops, exit 1) when it is:
//! - an input (the same device and inode: another path, or a hard link, counts too);
//! - another output of the same run;
//! - inside the state directory (whose files are the run's other input);
//! - a symbolic link (never followed: `O_NOFOLLOW`), or not a regular file;
//! - not writable: an output that does not exist yet is created (empty, 0600) by the claim, so
//!   an unwritable `--summary-json` is found before the first request, not after the last.
//!
//! A claimed [`Output`] holds its file open, so the file written is the file checked, whatever
//! happens to the path meanwhile. It is emptied only when its writer takes it
//! ([`Output::into_file`]); one the claim created and no writer took (the run stopped first)
//! is removed again, as if the run had never named it.
//!
//! # Formula cells
//! A spreadsheet reads a cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return
//! as a formula, and e-mail addresses like `=cmd|'/Ccalc'!A0@example.com` are valid. Every
//! text cell of a CSV or spreadsheet output goes through [`escape_cell`] (OWASP's rule: a
//! leading `'`); what is sent to the shop is never escaped. [`unescape_cell`] undoes exactly
//! that, for `state import` of an export.

use std::borrow::Cow;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// An output could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct WriteError {
    pub path: PathBuf,
    pub source: io::Error,
}

/// Why an output path is refused; see the module doc.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutputError {
    #[error(
        "{flag} {path} is the input file {input}, or a file the run reads: an output never \
         overwrites an input; give the output another name"
    )]
    IsInput {
        flag: &'static str,
        path: PathBuf,
        input: PathBuf,
    },
    #[error("{flag} {path} is the same file as {other}: give each output a file of its own")]
    Shared {
        flag: &'static str,
        path: PathBuf,
        other: &'static str,
    },
    #[error(
        "{flag} {path} is inside the state directory {dir}: write outputs elsewhere, so that \
         they cannot overwrite the state"
    )]
    InStateDir {
        flag: &'static str,
        path: PathBuf,
        dir: PathBuf,
    },
    #[error(
        "{flag} {path} is a symbolic link: outputs are never written through a link; give the \
         file's real path, or another name"
    )]
    Symlink { flag: &'static str, path: PathBuf },
    #[error("{flag} {path} is a {kind}, not a regular file: give a file name")]
    NotAFile {
        flag: &'static str,
        path: PathBuf,
        kind: &'static str,
    },
    #[error("{flag} {path} cannot be written: {source}")]
    Unwritable {
        flag: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// A file's identity: the same device and inode is the same file, by whatever path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Id {
    dev: u64,
    ino: u64,
}

impl Id {
    fn of(m: &Metadata) -> Self {
        Id {
            dev: m.dev(),
            ino: m.ino(),
        }
    }
}

/// What a path names, as far as writing to it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Found {
    Missing,
    File(Id),
    Link,
    Other(&'static str),
}

impl Found {
    fn of(m: &Metadata) -> Self {
        let t = m.file_type();
        if t.is_symlink() {
            Found::Link
        } else if t.is_file() {
            Found::File(Id::of(m))
        } else {
            Found::Other(kind_name(m))
        }
    }
}

fn kind_name(m: &Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "named pipe"
    } else if t.is_char_device() || t.is_block_device() {
        "device"
    } else if t.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

/// Why a path may not be written, given what it names; see the module doc. Pure: `inputs` and
/// `claimed` are the identities of the run's inputs and of the outputs claimed before it.
fn refusal(
    found: Found,
    inputs: &[(&Path, Id)],
    claimed: &[(&'static str, Id)],
) -> Option<Refusal> {
    match found {
        Found::Missing => None,
        Found::Link => Some(Refusal::Symlink),
        Found::Other(kind) => Some(Refusal::NotAFile(kind)),
        Found::File(id) => {
            if let Some((input, _)) = inputs.iter().find(|(_, i)| *i == id) {
                Some(Refusal::IsInput(input.to_path_buf()))
            } else {
                claimed
                    .iter()
                    .find(|(_, c)| *c == id)
                    .map(|(flag, _)| Refusal::Shared(flag))
            }
        }
    }
}

/// [`refusal`]'s verdict, before it is given a flag and a path.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    IsInput(PathBuf),
    Shared(&'static str),
    Symlink,
    NotAFile(&'static str),
}

impl Refusal {
    fn error(self, flag: &'static str, path: &Path) -> OutputError {
        let path = path.to_owned();
        match self {
            Refusal::IsInput(input) => OutputError::IsInput { flag, path, input },
            Refusal::Shared(other) => OutputError::Shared { flag, path, other },
            Refusal::Symlink => OutputError::Symlink { flag, path },
            Refusal::NotAFile(kind) => OutputError::NotAFile { flag, path, kind },
        }
    }
}

/// An output file, claimed and open, not yet emptied; see the module doc.
#[derive(Debug)]
pub struct Output {
    path: PathBuf,
    /// `None` once a writer took it.
    file: Option<File>,
    id: Id,
    /// The claim created the file (so it goes again if no writer takes it).
    created: bool,
}

impl Output {
    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file for its writer: emptied, and readable by its owner only (reports hold
    /// personal data).
    pub fn into_file(mut self) -> Result<File, WriteError> {
        let err = |source| WriteError {
            path: self.path.clone(),
            source,
        };
        let file = self
            .file
            .take()
            .ok_or_else(|| err(io::Error::other("the file was already taken")))?;
        file.set_len(0).map_err(err)?;
        // On the open file, not the path: a link put there meanwhile is not followed.
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(err)?;
        Ok(file)
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        // Only a file this claim created, still empty, and still the one at the path.
        let ours = self.created
            && self.file.is_some()
            && fs::symlink_metadata(&self.path)
                .is_ok_and(|m| Found::of(&m) == Found::File(self.id) && m.len() == 0);
        if ours {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Claims a run's outputs together (`(flag, path)`, `None` for an output not asked for),
/// against its `inputs` and its state directory; see the module doc. On a refusal nothing is
/// left behind.
pub fn claim<const N: usize>(
    inputs: &[&Path],
    state_dir: Option<&Path>,
    wanted: [(&'static str, Option<&Path>); N],
) -> Result<[Option<Output>; N], OutputError> {
    // An input that cannot be read fails where it is read, with its own message.
    let inputs: Vec<(&Path, Id)> = inputs
        .iter()
        .filter_map(|p| fs::metadata(p).ok().map(|m| (*p, Id::of(&m))))
        .collect();
    // A state directory that does not exist yet holds nothing to overwrite.
    let state_dir = state_dir.and_then(|d| d.canonicalize().ok());
    let mut out: [Option<Output>; N] = std::array::from_fn(|_| None);
    let mut claimed: Vec<(&'static str, Id)> = Vec::new();
    for (slot, (flag, path)) in out.iter_mut().zip(wanted) {
        let Some(path) = path else { continue };
        let output = open(flag, path, &inputs, &claimed, state_dir.as_deref())?;
        claimed.push((flag, output.id));
        *slot = Some(output);
    }
    Ok(out)
}

/// Opens one output after the checks of the module doc.
fn open(
    flag: &'static str,
    path: &Path,
    inputs: &[(&Path, Id)],
    claimed: &[(&'static str, Id)],
    state_dir: Option<&Path>,
) -> Result<Output, OutputError> {
    let unwritable = |source| OutputError::Unwritable {
        flag,
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = state_dir
        && real_location(path).is_some_and(|p| p.starts_with(dir))
    {
        return Err(OutputError::InStateDir {
            flag,
            path: path.to_owned(),
            dir: dir.to_owned(),
        });
    }
    let found = match fs::symlink_metadata(path) {
        Ok(m) => Found::of(&m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Found::Missing,
        Err(e) => return Err(unwritable(e)),
    };
    if let Some(why) = refusal(found, inputs, claimed) {
        return Err(why.error(flag, path));
    }
    let created = found == Found::Missing;
    let file = OpenOptions::new()
        .write(true)
        .create_new(created)
        .mode(0o600)
        // No link followed; and a pipe put there meanwhile fails instead of blocking.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => Refusal::Symlink.error(flag, path),
            _ => unwritable(e),
        })?;
    let m = file.metadata().map_err(unwritable)?;
    let output = Output {
        path: path.to_owned(),
        file: Some(file),
        id: Id::of(&m),
        created,
    };
    // The same checks on the file opened: the path may have changed since it was looked at.
    match refusal(Found::of(&m), inputs, claimed) {
        Some(why) => Err(why.error(flag, path)),
        None => Ok(output),
    }
}

/// Where `path` lives once every link in its directories is resolved (its file name kept as
/// it is), or `None` when its directory does not exist.
fn real_location(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Some(dir.canonicalize().ok()?.join(name))
}

/// What makes a spreadsheet read a cell as a formula, when the cell starts with it (OWASP).
const FORMULA_START: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Whether a cell needs a leading `'`: it starts with a formula character, after any `'`s of
/// its own (so that [`unescape_cell`] can tell an added quote from a cell's own).
fn needs_quote(cell: &str) -> bool {
    cell.trim_start_matches('\'').starts_with(FORMULA_START)
}

/// A text cell as a CSV or spreadsheet output writes it: with a leading `'` when a spreadsheet
/// would take it for a formula; see the module doc.
pub fn escape_cell(cell: &str) -> Cow<'_, str> {
    if needs_quote(cell) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// The cell [`escape_cell`] was given, from what it wrote.
pub fn unescape_cell(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if needs_quote(rest) => rest,
        _ => cell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_get_a_quote_and_lose_exactly_that_one() {
        // cell -> as written
        let cases = [
            ("a@example.com", "a@example.com"),
            (
                "=cmd|'/Ccalc'!A0@example.com",
                "'=cmd|'/Ccalc'!A0@example.com",
            ),
            ("+1+2@example.com", "'+1+2@example.com"),
            ("-x@example.com", "'-x@example.com"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            (
                "=HYPERLINK(\"http://evil\")",
                "'=HYPERLINK(\"http://evil\")",
            ),
            // A cell's own quote before a formula character is kept by a quote of ours.
            ("'=x", "''=x"),
            ("''-x", "'''-x"),
            // Quotes and formula characters elsewhere are no formula.
            ("'quoted'", "'quoted'"),
            ("a=b", "a=b"),
            (" =1", " =1"),
            ("", ""),
            ("'", "'"),
        ];
        for (cell, written) in cases {
            assert_eq!(escape_cell(cell), written, "{cell:?}");
            assert_eq!(unescape_cell(written), cell, "{written:?}");
        }
        // An old export's unescaped cell reads as it stands.
        assert_eq!(unescape_cell("=x@example.com"), "=x@example.com");
    }

    fn id(ino: u64) -> Id {
        Id { dev: 1, ino }
    }

    #[test]
    fn an_output_may_not_be_an_input_another_output_a_link_or_a_special_file() {
        let input = Path::new("in.csv");
        let inputs = [(input, id(1))];
        let claimed = [("--report", id(2))];
        // what the path names -> refusal
        let cases = [
            (Found::Missing, None),
            (Found::File(id(3)), None),
            (Found::File(id(1)), Some(Refusal::IsInput(input.to_owned()))),
            (Found::File(id(2)), Some(Refusal::Shared("--report"))),
            (Found::Link, Some(Refusal::Symlink)),
            (
                Found::Other("directory"),
                Some(Refusal::NotAFile("directory")),
            ),
            // Another device's inode 1 is another file.
            (Found::File(Id { dev: 2, ino: 1 }), None),
        ];
        for (found, want) in cases {
            assert_eq!(refusal(found, &inputs, &claimed), want, "{found:?}");
        }
    }

    /// A directory with an input file in it.
    fn dir() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("in.csv");
        fs::write(&input, "email\n").expect("write");
        (dir, input)
    }

    #[test]
    fn the_input_is_refused_by_any_path_and_left_as_it_was() {
        let (dir, input) = dir();
        let hard = dir.path().join("hard.csv");
        fs::hard_link(&input, &hard).expect("link");
        let dotted = dir.path().join(".").join("in.csv");
        for path in [&input, &hard, &dotted] {
            let err = claim(&[&input], None, [("--summary-json", Some(path.as_path()))])
                .expect_err("the input");
            assert!(matches!(err, OutputError::IsInput { .. }), "{err}");
        }
        assert_eq!(fs::read_to_string(&input).expect("read"), "email\n");
    }

    #[test]
    fn two_outputs_on_one_file_are_refused_and_nothing_is_left_behind() {
        let (dir, input) = dir();
        let a = dir.path().join("out.csv");
        let b = dir.path().join("sub").join("..").join("out.csv");
        fs::create_dir(dir.path().join("sub")).expect("mkdir");
        let err = claim(
            &[&input],
            None,
            [
                ("--report", Some(a.as_path())),
                ("--absent-report", Some(&b)),
            ],
        )
        .expect_err("shared");
        assert_eq!(
            err.to_string(),
            format!(
                "--absent-report {} is the same file as --report: give each output a file of \
                 its own",
                b.display()
            )
        );
        assert!(!a.exists(), "the file the claim created is gone again");
    }

    #[test]
    fn links_and_directories_are_refused_and_their_targets_untouched() {
        let (dir, input) = dir();
        let target = dir.path().join("target.txt");
        fs::write(&target, "keep").expect("write");
        fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).expect("chmod");
        let link = dir.path().join("report.csv");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let dangling = dir.path().join("dangling.csv");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).expect("symlink");
        for path in [&link, &dangling] {
            let err =
                claim(&[&input], None, [("--report", Some(path.as_path()))]).expect_err("a link");
            assert!(matches!(err, OutputError::Symlink { .. }), "{err}");
        }
        assert!(!dir.path().join("nowhere").exists());
        assert_eq!(fs::read_to_string(&target).expect("read"), "keep");
        let mode = fs::metadata(&target).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        let err = claim(&[&input], None, [("--report", Some(dir.path()))]).expect_err("a dir");
        assert!(err.to_string().contains("is a directory"), "{err}");
    }

    #[test]
    fn outputs_in_the_state_directory_or_unwritable_ones_are_refused() {
        let (dir, input) = dir();
        let state = dir.path().join("state");
        fs::create_dir(&state).expect("mkdir");
        let inside = state.join("db");
        let err = claim(&[], Some(&state), [("--output", Some(inside.as_path()))])
            .expect_err("in the state");
        assert!(matches!(err, OutputError::InStateDir { .. }), "{err}");
        assert!(!inside.exists());
        let nowhere = dir.path().join("missing").join("summary.json");
        let err = claim(
            &[&input],
            Some(&state),
            [("--summary-json", Some(&nowhere))],
        )
        .expect_err("no directory");
        assert!(matches!(err, OutputError::Unwritable { .. }), "{err}");
    }

    #[test]
    fn a_claimed_output_is_emptied_only_when_taken_and_goes_if_never_taken() {
        let (dir, input) = dir();
        let old = dir.path().join("old.csv");
        fs::write(&old, "last run").expect("write");
        fs::set_permissions(&old, fs::Permissions::from_mode(0o644)).expect("chmod");
        let new = dir.path().join("new.json");
        let [a, b] = claim(
            &[&input],
            None,
            [
                ("--report", Some(old.as_path())),
                ("--summary-json", Some(&new)),
            ],
        )
        .expect("claimed");
        let (a, b) = (a.expect("report"), b.expect("summary"));
        assert_eq!(fs::read_to_string(&old).expect("read"), "last run");
        assert_eq!(
            fs::metadata(&new).expect("created").permissions().mode() & 0o777,
            0o600
        );
        drop(a.into_file().expect("taken"));
        assert_eq!(fs::read_to_string(&old).expect("read"), "");
        assert_eq!(
            fs::metadata(&old).expect("stat").permissions().mode() & 0o777,
            0o600
        );
        drop(b);
        assert!(!new.exists(), "created, never taken: removed");
        assert!(old.exists());
    }
}
