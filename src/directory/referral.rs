//! Referrals to other directories (RFC 4511 §4.1.10): the naming contexts of trusted realms
//! (`[[trust]] ldap`) that this server does not hold, and the LDAP URL (RFC 4516) of the server
//! that does. A request whose target is at or below such a context is answered with a referral
//! naming that server and the target DN, never with this directory's own noSuchObject.
//!
//! Owns: the table of referred contexts and the URL built for a target. May import: `model`.

use crate::model::dn::Dn;

/// Naming contexts held elsewhere, each with its server's URL (`ldap[s]://host[:port]`).
#[derive(Clone, Debug, Default)]
pub struct Referrals {
    contexts: Vec<(Dn, String)>,
}

impl Referrals {
    /// A table from (naming context, server URL) pairs.
    pub fn new(contexts: Vec<(Dn, String)>) -> Referrals {
        Referrals { contexts }
    }

    /// The referral URLs for a request on `target`: `None` unless `target` is at or below a
    /// referred context. The most specific context wins.
    pub fn for_target(&self, target: &Dn) -> Option<Vec<String>> {
        let (_, url) = self
            .contexts
            .iter()
            .filter(|(base, _)| target.is_within(base))
            .max_by_key(|(base, _)| base.depth())?;
        Some(vec![format!("{url}/{}", escape_dn(&target.to_string()))])
    }
}

/// RFC 4516 §2.1: the DN in an LDAP URL is percent-encoded where it holds characters that
/// are not allowed there (RFC 3986 unreserved and sub-delims stay; `?`, `/`, `%`, space,
/// and non-ASCII bytes are encoded).
fn escape_dn(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    for b in dn.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
            );
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dn(s: &str) -> Dn {
        Dn::parse(s).expect("test DN")
    }

    #[test]
    fn targets_below_a_context_are_referred_with_their_dn() {
        let r = Referrals::new(vec![
            (dn("dc=other,dc=com"), "ldaps://ldap.other.com".into()),
            (
                dn("dc=sub,dc=other,dc=com"),
                "ldap://sub.other.com:389".into(),
            ),
        ]);
        assert_eq!(
            r.for_target(&dn("dc=other,dc=com")),
            Some(vec!["ldaps://ldap.other.com/dc=other,dc=com".to_string()])
        );
        assert_eq!(
            r.for_target(&dn("cn=Bob Smith,ou=People,dc=sub,dc=other,dc=com")),
            Some(vec![
                "ldap://sub.other.com:389/cn=Bob%20Smith,ou=People,dc=sub,dc=other,dc=com"
                    .to_string()
            ])
        );
        assert_eq!(r.for_target(&dn("dc=example,dc=com")), None);
        assert_eq!(r.for_target(&dn("dc=com")), None);
        assert_eq!(
            Referrals::default().for_target(&dn("dc=other,dc=com")),
            None
        );
    }

    #[test]
    fn reserved_characters_are_percent_encoded() {
        assert_eq!(escape_dn("cn=a?b/c%d é"), "cn=a%3Fb%2Fc%25d%20%C3%A9");
    }
}
