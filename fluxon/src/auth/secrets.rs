//! Secrets: the server's private key (and any other secret value), loaded from a secrets
//! directory or an environment variable, as the original's Secrets loader did.
//!
//! A secrets directory holds one file per secret. Both the directory and its files must be
//! readable by their owner only (no permission bits for group or others): [`Secrets::open`]
//! refuses anything looser, [`Secrets::open_fixing`] tightens it (directory `0700`, files `0600`)
//! and logs which path it fixed. Both must also belong to the user the server runs as, and be no
//! symlinks (a secret file is opened without following one, and checked on the open file, so
//! nothing can be swapped in between the check and the read). A [`Secret`] never shows its bytes:
//! its `Debug` says how long it is and nothing else, and its memory is wiped when it is dropped.
//! A secret read from the environment is removed from the environment once read, so child
//! processes and later readers of `/proc/<pid>/environ` do not inherit it.
//!
//! ```no_run
//! use fluxon::auth::Secrets;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = Secrets::open("secrets")?.private_key()?; // secrets/private_key, at least 32 bytes
//! let router = fluxon::Router::new().private_key(&key)?;
//! # Ok(()) }
//! ```

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::MIN_PRIVATE_KEY_LEN;

/// The file of the server's private key in a secrets directory.
pub const PRIVATE_KEY_FILE: &str = "private_key";

/// Why a secret could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// No such secret.
    #[error("no secret `{0}`")]
    Missing(String),
    /// The file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Group or others may access it.
    #[error("{path} has mode {mode:o}: secrets must be readable by their owner only (chmod {want:o}, or Secrets::open_fixing)")]
    LooseMode {
        /// The path.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// What they should be.
        want: u32,
    },
    /// Too short to be a key.
    #[error("secret `{name}` is {len} bytes; a private key needs at least {min}")]
    TooShort {
        /// The secret's name.
        name: String,
        /// Its length.
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// Not a plain file name.
    #[error("`{0}` is not a secret's name (a plain file name)")]
    BadName(String),
    /// A symlink where a secret (or the secrets directory) should be.
    #[error("{0} is a symlink: a secret and its directory must be the files themselves")]
    Symlink(PathBuf),
    /// Owned by another user than the one the server runs as.
    #[error(
        "{path} belongs to user {owner}, not to the user the server runs as ({running}): chown it"
    )]
    NotOwner {
        /// The path.
        path: PathBuf,
        /// Its owner's uid.
        owner: u32,
        /// The server's effective uid.
        running: u32,
    },
}

/// A secret value. Its bytes are only reachable through [`AsRef<[u8]>`], never printed, and
/// wiped from memory on drop.
pub struct Secret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret(<{} bytes, redacted>)", self.0.len())
    }
}

impl AsRef<[u8]> for Secret {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Secret {
    /// The value of the environment variable `var` (its bytes as given), which is then removed
    /// from the environment. Read secrets at start-up, before other threads look at the
    /// environment (changing it while another thread reads it is a race in the C library).
    pub fn from_env(var: &str) -> Result<Secret, SecretError> {
        let value = std::env::var_os(var).ok_or_else(|| SecretError::Missing(var.to_owned()))?;
        std::env::remove_var(var);
        Ok(Secret(Zeroizing::new(value.into_encoded_bytes().to_vec())))
    }

    /// A private key from the environment variable `var`, at least
    /// [`MIN_PRIVATE_KEY_LEN`] bytes.
    pub fn private_key_from_env(var: &str) -> Result<Secret, SecretError> {
        Secret::from_env(var)?.long_enough(var)
    }

    /// How many bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn long_enough(self, name: &str) -> Result<Secret, SecretError> {
        if self.0.len() < MIN_PRIVATE_KEY_LEN {
            return Err(SecretError::TooShort {
                name: name.to_owned(),
                len: self.0.len(),
                min: MIN_PRIVATE_KEY_LEN,
            });
        }
        Ok(self)
    }
}

/// A secrets directory.
#[derive(Debug, Clone)]
pub struct Secrets {
    dir: PathBuf,
    fix: bool,
}

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

impl Secrets {
    /// Opens a secrets directory, refusing it if group or others may access it.
    pub fn open(dir: impl AsRef<Path>) -> Result<Secrets, SecretError> {
        Self::opened(dir.as_ref(), false)
    }

    /// Opens a secrets directory, tightening the modes of it and of each secret read to owner
    /// only (logging every path it fixes).
    pub fn open_fixing(dir: impl AsRef<Path>) -> Result<Secrets, SecretError> {
        Self::opened(dir.as_ref(), true)
    }

    fn opened(dir: &Path, fix: bool) -> Result<Secrets, SecretError> {
        let secrets = Secrets {
            dir: dir.to_path_buf(),
            fix,
        };
        let meta = std::fs::symlink_metadata(dir).map_err(|source| SecretError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        secrets.check(dir, &meta, DIR_MODE)?;
        Ok(secrets)
    }

    /// The secret in the file `name`. A file that is valid UTF-8 is taken as text: its trailing
    /// line break is not part of the secret.
    pub fn get(&self, name: &str) -> Result<Secret, SecretError> {
        let plain =
            !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0']);
        if !plain {
            return Err(SecretError::BadName(name.to_owned()));
        }
        let path = self.dir.join(name);
        let io = |source| SecretError::Io {
            path: path.clone(),
            source,
        };
        // Not following a symlink, and checking the file that was opened: nothing can be put in
        // its place between the check and the read.
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&path);
        let mut file = match opened {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SecretError::Missing(name.to_owned()))
            }
            Err(e) => {
                let symlink = std::fs::symlink_metadata(&path)
                    .is_ok_and(|meta| meta.file_type().is_symlink());
                return Err(if symlink {
                    SecretError::Symlink(path)
                } else {
                    io(e)
                });
            }
        };
        let meta = file.metadata().map_err(io)?;
        self.check(&path, &meta, FILE_MODE)?;
        let mut bytes = Zeroizing::new(Vec::new());
        file.read_to_end(&mut bytes).map_err(io)?;
        if std::str::from_utf8(&bytes).is_ok() {
            while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                bytes.pop();
            }
        }
        Ok(Secret(bytes))
    }

    /// The server's private key: the secret [`PRIVATE_KEY_FILE`], at least
    /// [`MIN_PRIVATE_KEY_LEN`] bytes.
    pub fn private_key(&self) -> Result<Secret, SecretError> {
        self.get(PRIVATE_KEY_FILE)?.long_enough(PRIVATE_KEY_FILE)
    }

    /// Not a symlink, owned by this process's user, and no access for group or others (fixed,
    /// when opened with `open_fixing`).
    fn check(&self, path: &Path, meta: &std::fs::Metadata, want: u32) -> Result<(), SecretError> {
        if meta.file_type().is_symlink() {
            return Err(SecretError::Symlink(path.to_path_buf()));
        }
        let running = rustix::process::geteuid().as_raw();
        if meta.uid() != running {
            return Err(SecretError::NotOwner {
                path: path.to_path_buf(),
                owner: meta.uid(),
                running,
            });
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 == 0 {
            return Ok(());
        }
        if !self.fix {
            return Err(SecretError::LooseMode {
                path: path.to_path_buf(),
                mode,
                want,
            });
        }
        let io = |source| SecretError::Io {
            path: path.to_path_buf(),
            source,
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(want)).map_err(io)?;
        tracing::warn!(path = %path.display(), old = format!("{mode:o}"), new = format!("{want:o}"), "tightened the mode of a secret");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_tight_directory_gives_its_secrets_and_loose_modes_are_refused_or_fixed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("secrets");
        std::fs::create_dir(&dir).unwrap();
        chmod(&dir, 0o700);
        let key_file = dir.join(PRIVATE_KEY_FILE);
        std::fs::write(&key_file, format!("{}\n", "k".repeat(40))).unwrap();
        chmod(&key_file, 0o600);
        let key = Secrets::open(&dir).unwrap().private_key().unwrap();
        assert_eq!(
            key.as_ref(),
            "k".repeat(40).as_bytes(),
            "line break not included"
        );
        assert_eq!(format!("{key:?}"), "Secret(<40 bytes, redacted>)");

        // A file others can read.
        chmod(&key_file, 0o644);
        let err = Secrets::open(&dir).unwrap().private_key().unwrap_err();
        assert!(
            matches!(err, SecretError::LooseMode { mode: 0o644, .. }),
            "{err}"
        );
        assert!(!err.to_string().contains("kkkk"));
        // A directory others can enter.
        chmod(&dir, 0o755);
        assert!(matches!(
            Secrets::open(&dir),
            Err(SecretError::LooseMode { mode: 0o755, .. })
        ));
        // Fixing tightens both, then reads.
        let key = Secrets::open_fixing(&dir).unwrap().private_key().unwrap();
        assert_eq!(key.len(), 40);
        assert_eq!((mode(&dir), mode(&key_file)), (0o700, 0o600));
    }

    #[test]
    fn short_missing_and_oddly_named_secrets_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        chmod(dir, 0o700);
        let secrets = Secrets::open(dir).unwrap();
        assert!(matches!(
            secrets.private_key(),
            Err(SecretError::Missing(_))
        ));
        std::fs::write(dir.join(PRIVATE_KEY_FILE), "short").unwrap();
        chmod(&dir.join(PRIVATE_KEY_FILE), 0o600);
        assert!(matches!(
            secrets.private_key(),
            Err(SecretError::TooShort { len: 5, .. })
        ));
        for name in ["", "..", "../etc/passwd", "a/b", "a\0b"] {
            assert!(
                matches!(secrets.get(name), Err(SecretError::BadName(_))),
                "{name:?}"
            );
        }
        // Binary keys are taken byte for byte.
        let binary: Vec<u8> = (0..64u8).map(|b| b.wrapping_mul(37) | 0x80).collect();
        std::fs::write(dir.join("binary"), &binary).unwrap();
        chmod(&dir.join("binary"), 0o600);
        assert_eq!(secrets.get("binary").unwrap().as_ref(), &binary[..]);
    }

    #[test]
    fn keys_come_from_the_environment_too() {
        // A variable name no other test uses.
        let var = "FLUXON_TEST_SECRET_FROM_ENV_7Q";
        assert!(matches!(
            Secret::private_key_from_env(var),
            Err(SecretError::Missing(_))
        ));
        // Only this test touches this variable.
        std::env::set_var(var, "x".repeat(12));
        assert!(matches!(
            Secret::private_key_from_env(var),
            Err(SecretError::TooShort { len: 12, .. })
        ));
        std::env::set_var(var, "y".repeat(48));
        assert_eq!(Secret::private_key_from_env(var).unwrap().len(), 48);
        assert!(
            std::env::var_os(var).is_none(),
            "a secret read from the environment leaves it"
        );
    }

    #[test]
    fn symlinks_are_refused_for_the_directory_and_for_a_secret() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        chmod(&real, 0o700);
        let key = real.join("elsewhere");
        std::fs::write(&key, "z".repeat(40)).unwrap();
        chmod(&key, 0o600);
        // A secret that is a link to a file the server could read.
        std::os::unix::fs::symlink(&key, real.join(PRIVATE_KEY_FILE)).unwrap();
        let err = Secrets::open(&real).unwrap().private_key().unwrap_err();
        assert!(matches!(err, SecretError::Symlink(_)), "{err}");
        // A secrets directory that is a link.
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(matches!(Secrets::open(&link), Err(SecretError::Symlink(_))));
        assert!(matches!(
            Secrets::open_fixing(&link),
            Err(SecretError::Symlink(_))
        ));
    }

    /// Only testable where the test can make a file owned by someone else: as root (as CI runs).
    #[test]
    fn a_secret_owned_by_another_user_is_refused() {
        if rustix::process::geteuid().as_raw() != 0 {
            // Without root no file of another owner can be made (CI runs as root).
            eprintln!("SKIPPED a_secret_owned_by_another_user_is_refused: needs root to chown");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        chmod(dir, 0o700);
        let file = dir.join(PRIVATE_KEY_FILE);
        std::fs::write(&file, "o".repeat(40)).unwrap();
        chmod(&file, 0o600);
        std::os::unix::fs::chown(&file, Some(65534), Some(65534)).unwrap();
        let err = Secrets::open(dir).unwrap().private_key().unwrap_err();
        assert!(
            matches!(
                err,
                SecretError::NotOwner {
                    owner: 65534,
                    running: 0,
                    ..
                }
            ),
            "{err}"
        );
        std::os::unix::fs::chown(dir, Some(65534), None).unwrap();
        assert!(matches!(
            Secrets::open(dir),
            Err(SecretError::NotOwner { .. })
        ));
    }
}
