//! `hcbackup key list|add|remove|passwd|rotate`.

use std::path::PathBuf;

use clap::Subcommand;

use super::{render, Ctx};
use crate::config::{read_password, PasswordSource};
use crate::error::{exit, Result};

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// List key files (one per password).
    List,
    /// Add a password (e.g. a disaster-recovery escrow password).
    Add {
        /// Read the new password from this file (also HCBACKUP_NEW_PASSWORD_FILE).
        #[arg(long, value_name = "FILE", env = "HCBACKUP_NEW_PASSWORD_FILE")]
        new_password_file: Option<PathBuf>,
    },
    /// Remove a key file by id prefix (not the one in use).
    Remove {
        /// The key file's id (a unique prefix, as `key list` shows it).
        id: String,
    },
    /// Change the password in use: a new key file replaces the old one; data is not re-encrypted.
    Passwd {
        /// Read the new password from FILE (also HCBACKUP_NEW_PASSWORD_FILE);
        /// otherwise it is asked on the terminal.
        #[arg(long, value_name = "FILE", env = "HCBACKUP_NEW_PASSWORD_FILE")]
        new_password_file: Option<PathBuf>,
    },
    /// Seal new data under a new encryption key (the next key epoch); older data
    /// stays readable with the same passwords. Keeps each AES-GCM key far below
    /// its limit of about 4 billion objects (docs/crypto.md).
    Rotate,
}

fn new_password(file: Option<PathBuf>) -> Result<zeroize::Zeroizing<String>> {
    let src = match file {
        Some(f) => PasswordSource::File(f),
        None => PasswordSource::Prompt,
    };
    read_password(&src, "new password", true)
}

pub fn run(ctx: &Ctx, cmd: KeyCommand) -> Result<i32> {
    let mut repo = ctx.open()?;
    match cmd {
        KeyCommand::List => render::keys(ctx, &repo.list_keys()?),
        KeyCommand::Add { new_password_file } => {
            let pw = new_password(new_password_file)?;
            let (id, bytes) = repo.add_key(pw.as_bytes())?;
            ctx.note(|d| {
                d.detail = Some(format!("key {} added", &id[..8]));
                d.key_files = vec![crate::audit::key_file_record(&id, &bytes)];
            });
            render::line(
                ctx,
                &format!("added key {}", &id[..8]),
                serde_json::json!({ "id": id }),
            );
        }
        KeyCommand::Remove { id } => {
            let removed = repo.remove_key(&id)?;
            ctx.note(|d| d.detail = Some(format!("key {} removed", &removed[..8])));
            render::line(
                ctx,
                &format!("removed key {}", &removed[..8]),
                serde_json::json!({ "id": removed }),
            );
        }
        KeyCommand::Passwd { new_password_file } => {
            let pw = new_password(new_password_file)?;
            let old = repo.key_file().to_string();
            let id = repo.change_password(pw.as_bytes())?;
            // The old key's id goes into the log: mirror removes it at the copies
            // only because the log says it was removed here.
            let record = crate::audit::key_file_record(&id, repo.key_file_bytes());
            ctx.note(|d| {
                d.detail = Some(format!(
                    "password changed: key {} replaces key {}",
                    &id[..8],
                    &old[..8.min(old.len())]
                ));
                d.key_files = vec![record];
            });
            render::line(
                ctx,
                &format!("password changed (key {})", &id[..8]),
                serde_json::json!({ "id": id }),
            );
        }
        KeyCommand::Rotate => {
            let epoch = repo.rotate_key()?;
            ctx.note(|d| {
                d.detail = Some(format!("new data sealed under the key of epoch {epoch}"))
            });
            render::line(
                ctx,
                &format!("new data is now sealed under the key of epoch {epoch}; earlier data stays readable (run `hcbackup mirror` to update the copies)"),
                serde_json::json!({ "epoch": epoch }),
            );
        }
    }
    Ok(exit::OK)
}
