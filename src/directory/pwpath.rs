//! The one way a password is written, for every writer: LDAP modify of `userPassword` (by
//! name or OID 2.5.4.35) or `unicodePwd`, Password Modify, kpasswd, the CLI (`dird user
//! passwd`), LDIF change records, and (through `secrets::prepare_new_entry`) LDAP add, `dird
//! user add` and `dird import`. Each ends in `secrets::new_password` (policy, history,
//! argon2, Kerberos keys and kvno, pwdLastSet) and one backend write.
//! May import: `model`, `backend` (the trait), `directory::{error, identity, password,
//! pwvalue, secrets}`.
//!
//! Modify forms (MS-ADTS 3.1.1.3.1.5, for `unicodePwd` and `userPassword` alike):
//! - *change*: `delete` of the old value plus `add` of the new one, in one modify. Anyone may
//!   use it on their own entry (administrators on any); the old value must be right. A wrong
//!   one counts towards lockout and is answered constraintViolation (19), as AD does
//!   (`0000052D`-style "the old password is not correct"). The write also deletes the stored
//!   hash that was checked, so a concurrent change makes it fail instead of being overwritten.
//! - *reset*: `replace` (or `add`) with one value: administrators only; a user gets
//!   unwillingToPerform (53) saying to prove the old password.
//! - *remove*: `delete` or `replace` without values: administrators only.
//!
//! `unicodePwd` is never stored: its value (the password in double quotes, UTF-16LE) becomes
//! the new password. A value that looks hashed (`{SCHEME}…`) is never a cleartext password
//! (`pwvalue::classify`).

use std::time::SystemTime;

use crate::backend::WriteCtx;
use crate::directory::error::DirError;
use crate::directory::identity::Authenticated;
use crate::directory::pwvalue::{self, Writer, Written};
use crate::directory::{password, secrets, Directory};
use crate::model::filter::base_attr;
use crate::model::modify::ModifyError;
use crate::model::{Dn, Entry, ModOp, Modification};
use zeroize::Zeroizing;

const USER_PASSWORD: &str = "userPassword";
const UNICODE_PWD: &str = "unicodePwd";

fn constraint(msg: &str) -> DirError {
    DirError::Modify(ModifyError::Constraint(msg.into()))
}

/// What a modify asks of the password.
enum Form {
    /// the old password (proved) and the new value
    Change {
        old: Zeroizing<Vec<u8>>,
        new: Written,
    },
    /// an administrator's reset
    Reset(Written),
    /// an administrator removes the password
    Remove,
}

impl Directory {
    /// The canonical name (`userPassword` or `unicodePwd`) if `attr` names a password
    /// attribute, by any name, OID or with options.
    pub(crate) fn password_attr(&self, attr: &str) -> Option<&'static str> {
        let base = base_attr(attr);
        let canonical = self.schema.canonical_name(base).unwrap_or(base);
        [USER_PASSWORD, UNICODE_PWD]
            .into_iter()
            .find(|p| p.eq_ignore_ascii_case(canonical))
    }

    /// True if `attr` names a password attribute (by any name or OID).
    pub(crate) fn is_password_attr(&self, attr: &str) -> bool {
        self.password_attr(attr).is_some()
    }

    /// An LDAP (or CLI, or LDIF change record) modify that touches a password attribute:
    /// `mods` have canonical attribute names; access and TLS were checked by the caller.
    pub(super) async fn modify_password(
        &self,
        who: &Authenticated,
        by: Dn,
        dn: &Dn,
        mods: Vec<Modification>,
        now: SystemTime,
    ) -> Result<(), DirError> {
        let (pw, others): (Vec<Modification>, Vec<Modification>) = mods
            .into_iter()
            .partition(|m| self.is_password_attr(&m.attr));
        let writer = if who.is_admin() {
            Writer::Trusted
        } else {
            Writer::User
        };
        let form = password_form(&pw, writer)?;
        let self_service = who.dn() == dn;
        match form {
            Form::Change { old, new } => {
                let Some(entry) = self.backend.entry(dn).await? else {
                    return Err(self.missing(dn).await);
                };
                let policy = self.policy_for(&entry).await?;
                let stored = entry.first_str(USER_PASSWORD).map(str::to_string);
                match self.check_password(&entry, &policy, &old, now).await {
                    Ok(()) => {}
                    Err(DirError::InvalidCredentials(Some("775"))) => {
                        return Err(constraint(
                            "the account is locked out; the password cannot be changed",
                        ))
                    }
                    Err(DirError::InvalidCredentials(_)) => {
                        return Err(constraint("the old password is not correct"))
                    }
                    Err(e) => return Err(e),
                }
                self.write_password(by, dn, others, new, stored, self_service, now)
                    .await
            }
            Form::Reset(_) | Form::Remove if !who.is_admin() => Err(DirError::UnwillingToPerform(
                "a user changes their own password by proving the old one: delete the old \
                 value and add the new one in one modify, or use Password Modify with the \
                 old password",
            )),
            Form::Reset(new) => {
                self.write_password(by, dn, others, new, None, self_service, now)
                    .await
            }
            Form::Remove => {
                let mut mods = others;
                for attr in [USER_PASSWORD, secrets::KEYS_ATTR] {
                    mods.push(Modification {
                        op: ModOp::Replace,
                        attr: attr.into(),
                        values: Vec::new(),
                    });
                }
                let ctx = WriteCtx { by, now };
                self.backend.modify(dn, mods, true, &ctx).await?;
                Ok(())
            }
        }
    }

    /// Password Modify, kpasswd: sets `new_password` (a password, never a hash) on `target`.
    /// `self_service`: the account changes its own password (minimum age and history apply;
    /// an administrator's reset is exempt, as in AD).
    pub(crate) async fn set_password(
        &self,
        by: Dn,
        target: &Dn,
        new_password: Vec<u8>,
        self_service: bool,
        now: SystemTime,
    ) -> Result<(), DirError> {
        let new_password = Zeroizing::new(new_password);
        let new = pwvalue::classify(&new_password, Writer::User)?;
        self.write_password(by, target, Vec::new(), new, None, self_service, now)
            .await
    }

    /// Prepares a new entry's password (LDAP add, CLI add) on the hash threads: the entry's
    /// policy, then `secrets::prepare_new_entry`. Add needs an administrator, so an
    /// `{ARGON2}` value within bounds is accepted.
    pub(super) async fn prepare_new_entry(
        &self,
        entry: Entry,
        now: SystemTime,
    ) -> Result<Entry, DirError> {
        let rules = password::PasswordRules {
            policy: self.policy_for(&entry).await?,
            history: Vec::new(),
        };
        self.prepare_new_entry_with(entry, rules, now).await
    }

    /// `secrets::prepare_new_entry` for a trusted writer (LDAP add by an administrator, the
    /// CLI, import) under `rules`, on the hash threads.
    pub(super) async fn prepare_new_entry_with(
        &self,
        mut entry: Entry,
        rules: password::PasswordRules,
        now: SystemTime,
    ) -> Result<Entry, DirError> {
        let (realm, master) = (self.domain.realm.clone(), self.master.clone());
        self.hasher
            .run(move || {
                let ctx = master.as_deref().map(|master| secrets::KeyContext {
                    realm: &realm,
                    master,
                });
                secrets::prepare_new_entry(&mut entry, ctx, Writer::Trusted, &rules, now)?;
                Ok(entry)
            })
            .await
    }

    /// The write every password change ends in: `secrets::new_password` on the hash threads
    /// for the entry as it will be (with `others` applied), then one backend modify carrying
    /// `others`, the hash, the keys and kvno (or their removal), the history and pwdLastSet
    /// (unless `others` sets it). `proven`: the stored hash the old password was checked
    /// against; it is deleted in the same write, so the write fails if it changed meanwhile.
    #[allow(clippy::too_many_arguments)]
    async fn write_password(
        &self,
        by: Dn,
        dn: &Dn,
        others: Vec<Modification>,
        new: Written,
        proven: Option<String>,
        self_service: bool,
        now: SystemTime,
    ) -> Result<(), DirError> {
        let Some(current) = self.backend.entry(dn).await? else {
            return Err(self.missing(dn).await);
        };
        let sets_pwd_last_set = others
            .iter()
            .any(|m| base_attr(&m.attr).eq_ignore_ascii_case("pwdLastSet"));
        // The entry as it will be (a modify may also set sAMAccountName or displayName);
        // errors are reported by the backend's own apply.
        let mut post = current.clone();
        let _ = crate::model::modify::apply(&mut post, &others, &self.schema, true);
        secrets::ensure_guid(&mut post);
        let policy = self.policy_for(&current).await?;
        // Stored hashes, newest first: the history, or (older entries) the current password.
        let history: Vec<String> = current
            .values(secrets::HISTORY_ATTR)
            .iter()
            .filter_map(|v| std::str::from_utf8(v).ok().map(str::to_string))
            .collect();
        let previous = if history.is_empty() {
            current
                .first_str(USER_PASSWORD)
                .map(str::to_string)
                .into_iter()
                .collect()
        } else {
            history
        };
        if self_service && matches!(new, Written::Cleartext(_)) {
            super::check_min_age(&current, &policy, now)?;
        }
        let rules = password::PasswordRules {
            history: if self_service {
                previous
                    .iter()
                    .take(policy.history_length as usize)
                    .cloned()
                    .collect()
            } else {
                Vec::new()
            },
            policy,
        };
        let (realm, master) = (self.domain.realm.clone(), self.master.clone());
        let update = self
            .hasher
            .run(move || {
                let ctx = master.as_deref().map(|master| secrets::KeyContext {
                    realm: &realm,
                    master,
                });
                secrets::new_password(secrets::NewPassword {
                    entry: &post,
                    value: new,
                    rules: &rules,
                    previous: &previous,
                    kerberos: ctx,
                    now,
                })
            })
            .await?;
        let mut mods = others;
        if let Some(old) = proven {
            mods.push(Modification {
                op: ModOp::Delete,
                attr: USER_PASSWORD.into(),
                values: vec![old.into_bytes()],
            });
        }
        let replace = |attr: &str, values: Vec<Vec<u8>>| Modification {
            op: ModOp::Replace,
            attr: attr.into(),
            values,
        };
        mods.push(replace(USER_PASSWORD, vec![update.phc.into_bytes()]));
        match update.kerberos {
            Some((blob, kvno)) => {
                mods.push(replace(secrets::KEYS_ATTR, vec![blob]));
                mods.push(replace(
                    secrets::KVNO_ATTR,
                    vec![kvno.to_string().into_bytes()],
                ));
            }
            // Keys derived from the old password would no longer match it.
            None => mods.push(replace(secrets::KEYS_ATTR, Vec::new())),
        }
        mods.push(replace(secrets::HISTORY_ATTR, update.history));
        if let (Some(t), false) = (update.pwd_last_set, sets_pwd_last_set) {
            mods.push(replace("pwdLastSet", vec![t.into_bytes()]));
        }
        let ctx = WriteCtx { by, now };
        self.backend.modify(dn, mods, true, &ctx).await?;
        Ok(())
    }
}

/// Reads the password modifications of one modify request (canonical names, in order) as
/// one of the forms above. Values of `unicodePwd` are decoded (quoted UTF-16LE); new values
/// are classified (`{SCHEME}` values refused, `{ARGON2}` only from `writer` Trusted).
fn password_form(pw: &[Modification], writer: Writer) -> Result<Form, DirError> {
    let value = |m: &Modification| -> Result<Option<Vec<u8>>, DirError> {
        match m.values.as_slice() {
            [] => Ok(None),
            [v] if m.attr == UNICODE_PWD => pwvalue::decode_unicode_pwd(v).map(Some),
            [v] => Ok(Some(v.clone())),
            _ => Err(constraint(
                "a password attribute takes one value: give one old and one new password",
            )),
        }
    };
    let new = |m: &Modification, v: Vec<u8>| -> Result<Written, DirError> {
        // A unicodePwd value is a password, never a hash.
        let w = if m.attr == UNICODE_PWD {
            Writer::User
        } else {
            writer
        };
        pwvalue::classify(&v, w)
    };
    match pw {
        [del, add] if del.op == ModOp::Delete && add.op == ModOp::Add => {
            match (value(del)?, value(add)?) {
                (Some(old), Some(v)) => Ok(Form::Change {
                    old: Zeroizing::new(old),
                    new: new(add, v)?,
                }),
                _ => Err(constraint(
                    "a password change deletes the old value and adds the new one, one value each",
                )),
            }
        }
        [m] if m.op == ModOp::Replace || m.op == ModOp::Add => match value(m)? {
            Some(v) => Ok(Form::Reset(new(m, v)?)),
            None if m.op == ModOp::Replace => Ok(Form::Remove),
            None => Err(constraint("a password add needs a value")),
        },
        [m] if m.op == ModOp::Delete && m.values.is_empty() => Ok(Form::Remove),
        _ => Err(DirError::UnwillingToPerform(
            "password modify: use replace (administrators), or delete of the old value plus \
             add of the new one in one modify",
        )),
    }
}
