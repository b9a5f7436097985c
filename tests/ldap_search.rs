#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Search (RFC 4511 §4.5) driven by the real `ldapsearch` (and python3-ldap3 where the CLI
//! cannot express the case): scopes, every filter type with three-valued logic, attribute
//! selection, limits, paged results (RFC 2696), controls, operational attributes, the rootDSE,
//! the subschema entry and read access control.

mod common;

use common::*;

/// `ldapsearch` as Administrator: base, scope, filter, attributes; asserts rc 0; returns DNs.
fn admin_dns(s: &TestServer, base: &str, scope: &str, filter: &str) -> Vec<String> {
    let out = s.search_as_admin(&["-b", base, "-s", scope, filter, "1.1"]);
    assert_eq!(rc(&out), 0, "{filter}: {}", text(&out));
    dns(&out)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn people(names: &[&str]) -> Vec<String> {
    sorted(names.iter().map(|n| format!("cn={n},{PEOPLE}")).collect())
}

const ALL_PEOPLE: &[&str] = &["alice", "bob", "carol", "devs", "ops"];

#[test]
fn scopes_base_one_sub_and_children() {
    let s = TestServer::start_seeded();
    let f = "(objectClass=*)";
    assert_eq!(admin_dns(&s, PEOPLE, "base", f), vec![PEOPLE.to_string()]);
    assert_eq!(sorted(admin_dns(&s, PEOPLE, "one", f)), people(ALL_PEOPLE));
    let mut sub_expected = people(ALL_PEOPLE);
    sub_expected.push(PEOPLE.to_string());
    assert_eq!(
        sorted(admin_dns(&s, PEOPLE, "sub", f)),
        sorted(sub_expected)
    );
    // children (subordinate subtree, draft-sermersheim-ldap-subordinate-scope): sub minus base
    assert_eq!(
        sorted(admin_dns(&s, PEOPLE, "children", f)),
        people(ALL_PEOPLE)
    );
    // the whole domain: provisioned DIT plus the seed
    let all = admin_dns(&s, BASE, "sub", f);
    for dn in [
        BASE,
        "cn=Users,dc=example,dc=com",
        ADMIN_DN,
        "cn=Domain Admins,cn=Users,dc=example,dc=com",
        ALICE_DN,
    ] {
        assert!(
            all.iter().any(|d| d == dn),
            "{dn} missing from subtree: {all:?}"
        );
    }
    // base on a missing entry: noSuchObject (32) with the matched DN
    let out = s.search_as_admin(&[
        "-b",
        "cn=ghost,ou=People,dc=example,dc=com",
        "-s",
        "base",
        f,
    ]);
    assert_eq!(rc(&out), 32, "{}", text(&out));
    assert!(
        text(&out).contains("Matched DN: ou=People,dc=example,dc=com"),
        "{}",
        text(&out)
    );
}

#[test]
fn equality_presence_and_substring_filters() {
    let s = TestServer::start_seeded();
    let one = |f: &str| sorted(admin_dns(&s, PEOPLE, "sub", f));
    assert_eq!(one("(cn=alice)"), people(&["alice"]));
    assert_eq!(
        one("(CN=ALICE)"),
        people(&["alice"]),
        "attribute name and caseIgnoreMatch value"
    );
    assert_eq!(one("(uid=*)"), people(&["alice", "bob", "carol"]));
    assert_eq!(one("(loginShell=*)"), people(&["alice"]));
    assert_eq!(one("(cn=al*)"), people(&["alice"]));
    assert_eq!(one("(cn=*li*)"), people(&["alice"]));
    assert_eq!(one("(cn=*ce)"), people(&["alice"]));
    assert_eq!(one("(cn=a*i*e)"), people(&["alice"]));
    assert_eq!(one("(mail=*@example.com)"), people(&["alice", "bob"]));
    assert_eq!(one("(sn=b*r)"), people(&["bob"]));
    assert_eq!(one("(cn=zz*)"), people(&[]));
    assert_eq!(
        one("(memberOf=cn=devs,ou=People,dc=example,dc=com)"),
        people(&["alice", "ops"])
    );
    assert_eq!(
        one("(member=CN=Bob,OU=People,DC=Example,DC=Com)"),
        people(&["ops"]),
        "DN values match by distinguishedNameMatch"
    );
}

#[test]
fn ordering_filters_greater_or_equal_and_less_or_equal() {
    let s = TestServer::start_seeded();
    // dird allocates uidNumber/gidNumber to every user and group (issue 3), so the
    // ordering checks look at the seed's POSIX accounts, whose numbers are explicit.
    let one = |f: &str| sorted(admin_dns(&s, PEOPLE, "sub", f));
    assert_eq!(
        one("(&(objectClass=posixAccount)(uidNumber>=10002))"),
        people(&["bob"])
    );
    assert_eq!(
        one("(&(objectClass=posixAccount)(uidNumber<=10001))"),
        people(&["alice"])
    );
    assert_eq!(
        one("(&(objectClass=posixAccount)(uidNumber>=9999))"),
        people(&["alice", "bob"]),
        "integerOrderingMatch, not string order"
    );
    assert_eq!(
        one("(&(objectClass=posixAccount)(uidNumber<=100000))"),
        people(&["alice", "bob"])
    );
    // sn has no ORDERING rule (RFC 4519): the assertion is Undefined, no error
    assert_eq!(one("(sn>=M)"), people(&[]));
    assert_eq!(
        one("(&(objectClass=posixAccount)(gidNumber>=20001))"),
        people(&["alice", "bob"])
    );
    // generalizedTime ordering, as sssd's smart refresh sends it
    assert_eq!(
        one("(&(cn=*)(modifyTimestamp>=19700101000000Z))"),
        people(ALL_PEOPLE)
    );
    assert_eq!(one("(modifyTimestamp>=99990101000000Z)"), people(&[]));
    assert_eq!(
        one("(modifyTimestamp<=99990101000000Z)").len(),
        6,
        "five entries and the OU"
    );
}

#[test]
fn approximate_filter() {
    let s = TestServer::start_seeded();
    assert_eq!(
        sorted(admin_dns(&s, PEOPLE, "sub", "(cn~=alice)")),
        people(&["alice"])
    );
    assert_eq!(
        sorted(admin_dns(&s, PEOPLE, "sub", "(sn~=BUILDER)")),
        people(&["bob"])
    );
}

#[test]
fn extensible_filters_case_exact_and_dn_attributes() {
    let s = TestServer::start_seeded();
    let one = |f: &str| sorted(admin_dns(&s, PEOPLE, "sub", f));
    assert_eq!(one("(cn:caseExactMatch:=alice)"), people(&["alice"]));
    assert_eq!(one("(cn:caseExactMatch:=ALICE)"), people(&[]));
    assert_eq!(
        one("(sn:2.5.13.5:=Liddell)"),
        people(&["alice"]),
        "rule by OID"
    );
    assert_eq!(
        one("(cn:=bob)"),
        people(&["bob"]),
        "attribute without rule: its equality rule"
    );
    // :dn: matches the RDN/DN components too (RFC 4511 §4.5.1.7.7)
    let mut with_ou = people(ALL_PEOPLE);
    with_ou.push(PEOPLE.to_string());
    assert_eq!(one("(ou:dn:=People)"), sorted(with_ou));
    assert_eq!(
        one("(ou=People)"),
        vec![PEOPLE.to_string()],
        "without :dn: only the OU itself"
    );
}

#[test]
fn extensible_filter_ad_bit_and_and_bit_or() {
    let s = TestServer::start_seeded();
    let one = |f: &str| sorted(admin_dns(&s, PEOPLE, "sub", f));
    // 514 = NORMAL_ACCOUNT | ACCOUNTDISABLE
    assert_eq!(
        one("(userAccountControl:1.2.840.113556.1.4.803:=2)"),
        people(&["carol"])
    );
    assert_eq!(
        one("(userAccountControl:1.2.840.113556.1.4.803:=514)"),
        people(&["carol"])
    );
    assert_eq!(
        one("(userAccountControl:1.2.840.113556.1.4.803:=512)"),
        people(&["alice", "bob", "carol"])
    );
    assert!(one("(!(userAccountControl:1.2.840.113556.1.4.803:=2))")
        .contains(&format!("cn=alice,{PEOPLE}")));
    assert!(!one("(!(userAccountControl:1.2.840.113556.1.4.803:=2))")
        .contains(&format!("cn=carol,{PEOPLE}")));
    assert_eq!(
        one("(userAccountControl:1.2.840.113556.1.4.804:=3)"),
        people(&["carol"])
    );
    assert_eq!(
        one("(userAccountControl:1.2.840.113556.1.4.804:=16)"),
        people(&[])
    );
}

#[test]
fn extensible_filter_in_chain_follows_nested_groups() {
    // devs = {alice, ops}; ops = {bob}: bob is in devs only through ops.
    let s = TestServer::start_seeded();
    let one = |f: &str| sorted(admin_dns(&s, BASE, "sub", f));
    assert_eq!(
        one("(memberOf:1.2.840.113556.1.4.1941:=cn=devs,ou=People,dc=example,dc=com)"),
        people(&["alice", "bob", "ops"])
    );
    assert_eq!(
        one("(&(objectClass=user)(memberOf:1.2.840.113556.1.4.1941:=cn=devs,ou=People,dc=example,dc=com))"),
        people(&["alice", "bob"])
    );
    assert_eq!(
        one("(memberOf:1.2.840.113556.1.4.1941:=cn=ops,ou=People,dc=example,dc=com)"),
        people(&["bob"])
    );
    // the other direction: every group bob is in, directly or not
    assert_eq!(
        one("(member:1.2.840.113556.1.4.1941:=cn=bob,ou=People,dc=example,dc=com)"),
        people(&["devs", "ops"])
    );
    assert_eq!(
        one("(member:1.2.840.113556.1.4.1941:=cn=alice,ou=People,dc=example,dc=com)"),
        people(&["devs"])
    );
    // plain memberOf is direct membership only
    assert_eq!(
        one("(memberOf=cn=devs,ou=People,dc=example,dc=com)"),
        people(&["alice", "ops"])
    );
}

#[test]
fn not_and_or_filters() {
    let s = TestServer::start_seeded();
    let one = |f: &str| sorted(admin_dns(&s, PEOPLE, "one", f));
    assert_eq!(one("(|(cn=alice)(cn=bob))"), people(&["alice", "bob"]));
    assert_eq!(
        one("(&(objectClass=user)(!(cn=alice)))"),
        people(&["bob", "carol"])
    );
    assert_eq!(one("(!(objectClass=user))"), people(&["devs", "ops"]));
    assert_eq!(
        one("(&(uid=alice)(objectClass=posixAccount)(uid=*)(&(uidNumber=*)(!(uidNumber=0))))"),
        people(&["alice"])
    );
    assert_eq!(one("(&)"), people(ALL_PEOPLE), "absolute true (RFC 4526)");
    assert_eq!(one("(|)"), people(&[]), "absolute false (RFC 4526)");
    assert_eq!(
        one("(&(|(cn=alice)(cn=carol))(!(|(sn=Singer)(sn=x))))"),
        people(&["alice"])
    );
}

#[test]
fn filters_on_unknown_attributes_are_undefined_not_errors() {
    let s = TestServer::start_seeded();
    for f in [
        "(&(objectClass=sudoRole)(|(sudoHost=ALL)(sudoHost=+*)(sudoHost=fd00::/64)))",
        "(&(objectClass=sudoRole)(|(&(!(sudoHost=*))(cn=defaults))(sudoHost=ALL)(sudoHost=vm)(sudoHost=127.0.0.1)(sudoHost=fd00::/64)(sudoHost=+*)))",
        "(&(objectClass=ipService)(cn=*)(ipServicePort=*)(ipServiceProtocol=*))",
        "(noSuchAttr=x)",
        "(!(noSuchAttr=x))",
        "(noSuchAttr>=1)",
        "(noSuchAttr~=x)",
        "(noSuchAttr=*)",
        "(noSuchAttr:caseExactMatch:=x)",
        "(cn:noSuchRule:=alice)",
    ] {
        let out = s.search_as_admin(&["-b", BASE, f, "1.1"]);
        assert_eq!(rc(&out), 0, "{f} must succeed: {}", text(&out));
        assert!(dns(&out).is_empty(), "{f} matches nothing: {:?}", dns(&out));
    }
    // Undefined inside OR does not spoil a true branch, and NOT(Undefined) stays Undefined.
    assert_eq!(
        sorted(admin_dns(&s, PEOPLE, "one", "(|(noSuchAttr=x)(cn=bob))")),
        people(&["bob"])
    );
    assert_eq!(
        sorted(admin_dns(&s, PEOPLE, "one", "(&(cn=bob)(!(noSuchAttr=x)))")),
        people(&[])
    );
}

#[test]
fn binary_objectguid_filter_finds_the_entry() {
    let s = TestServer::start_seeded();
    let out = s.search_as_admin(&[
        "-b",
        ALICE_DN,
        "-s",
        "base",
        "(objectClass=*)",
        "objectGUID",
    ]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let b64 = values(&out, "objectGUID");
    assert_eq!(
        b64.len(),
        1,
        "objectGUID is base64 (binary): {}",
        text(&out)
    );
    let guid = base64_decode(&b64[0]);
    assert_eq!(guid.len(), 16, "a GUID is 16 bytes: {guid:?}");
    let escaped: String = guid.iter().map(|b| format!("\\{b:02x}")).collect();
    let filter = format!("(objectGUID={escaped})");
    assert_eq!(
        admin_dns(&s, BASE, "sub", &filter),
        vec![ALICE_DN.to_string()],
        "{filter}"
    );
    // a GUID with bytes >= 0x80 and NULs, not in the directory: no entries, connection fine
    let out = s.search_as_admin(&[
        "-b",
        BASE,
        "(objectGUID=\\ff\\fe\\00\\01\\80\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00)",
        "1.1",
    ]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert!(dns(&out).is_empty());
    // objectSid works the same way
    let out = s.search_as_admin(&["-b", ALICE_DN, "-s", "base", "(objectClass=*)", "objectSid"]);
    let sid = base64_decode(&values(&out, "objectSid")[0]);
    let escaped: String = sid.iter().map(|b| format!("\\{b:02x}")).collect();
    assert_eq!(
        admin_dns(&s, BASE, "sub", &format!("(objectSid={escaped})")),
        vec![ALICE_DN.to_string()]
    );
}

fn base64_decode(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = A.iter().position(|x| *x == c).expect("base64 digit") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[test]
fn attribute_lists_star_plus_one_one_odd_case_options_and_unknown() {
    let s = TestServer::start_seeded();
    let get = |attrs: &[&str]| {
        let mut args = vec!["-b", ALICE_DN, "-s", "base", "(objectClass=*)"];
        args.extend_from_slice(attrs);
        let out = s.search_as_admin(&args);
        assert_eq!(rc(&out), 0, "{attrs:?}: {}", text(&out));
        out
    };
    let names = |out: &std::process::Output| -> Vec<String> {
        stdout(out)
            .lines()
            .filter(|l| !l.starts_with("dn:") && l.contains(':'))
            .map(|l| l.split(':').next().unwrap_or("").to_ascii_lowercase())
            .collect()
    };
    // no list = * = all user attributes, no operational ones
    for out in [get(&[]), get(&["*"])] {
        let n = names(&out);
        for a in [
            "cn",
            "sn",
            "mail",
            "uidnumber",
            "objectclass",
            "samaccountname",
        ] {
            assert!(n.contains(&a.to_string()), "{a} in {n:?}");
        }
        for a in [
            "entryuuid",
            "createtimestamp",
            "memberof",
            "entrydn",
            "userpassword",
        ] {
            assert!(
                !n.contains(&a.to_string()),
                "{a} must not come with *: {n:?}"
            );
        }
    }
    // 1.1: no attributes at all
    let out = get(&["1.1"]);
    assert_eq!(dns(&out), vec![ALICE_DN.to_string()]);
    assert!(names(&out).is_empty(), "{}", text(&out));
    // odd case, unknown names ignored, ;binary accepted
    let out = get(&[
        "SN",
        "gIvEnNaMe",
        "noSuchAttribute",
        "userCertificate;binary",
        "krbPrincipalName",
    ]);
    assert_eq!(
        sorted(names(&out)),
        vec!["givenname".to_string(), "sn".into()],
        "{}",
        text(&out)
    );
    assert_eq!(values(&out, "sn"), vec!["Liddell"]);
    assert_eq!(values(&out, "givenName"), vec!["Alice"]);
    // * plus a named operational attribute
    let n = names(&get(&["*", "modifyTimestamp"]));
    assert!(
        n.contains(&"modifytimestamp".into()) && n.contains(&"cn".into()),
        "{n:?}"
    );
    assert!(!n.contains(&"entryuuid".into()), "{n:?}");
    // + alone: operational only
    let n = names(&get(&["+"]));
    assert!(
        n.contains(&"entryuuid".into()) && !n.contains(&"cn".into()),
        "{n:?}"
    );
    // + and *: both
    let n = names(&get(&["*", "+"]));
    assert!(
        n.contains(&"entryuuid".into()) && n.contains(&"cn".into()),
        "{n:?}"
    );
    // the attribute a name with an option selects comes back
    let out = get(&["mail;binary"]);
    let v = values(&out, "mail;binary");
    assert_eq!(v.len(), 1, "{}", text(&out));
    assert_eq!(base64_decode(&v[0]), b"alice@example.com", "{}", text(&out));
}

#[test]
fn types_only_returns_names_without_values() {
    let s = TestServer::start_seeded();
    let out = s.search_as_admin(&[
        "-A",
        "-b",
        ALICE_DN,
        "-s",
        "base",
        "(objectClass=*)",
        "cn",
        "mail",
        "uidNumber",
    ]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let o = stdout(&out);
    for a in ["cn:", "mail:", "uidNumber:"] {
        assert!(
            o.lines().any(|l| l.trim() == a),
            "{a} without a value in {o}"
        );
    }
    assert!(
        !o.contains("alice@example.com") && !o.contains("10001"),
        "{o}"
    );
}

#[test]
fn client_size_limit_returns_exactly_the_limit_then_4() {
    let s = TestServer::start_seeded();
    let out = s.search_as_admin(&["-z", "2", "-b", BASE, "(objectClass=*)", "1.1"]);
    assert_eq!(rc(&out), 4, "sizeLimitExceeded: {}", text(&out));
    assert_eq!(dns(&out).len(), 2, "{}", text(&out));
    assert!(text(&out).contains("Size limit exceeded (4)"));
    // a limit that is not reached is no error
    let out = s.search_as_admin(&[
        "-z",
        "10",
        "-b",
        PEOPLE,
        "-s",
        "one",
        "(objectClass=*)",
        "1.1",
    ]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert_eq!(dns(&out).len(), 5);
    // time limit is accepted
    let out = s.search_as_admin(&[
        "-l",
        "5",
        "-b",
        PEOPLE,
        "-s",
        "one",
        "(objectClass=*)",
        "1.1",
    ]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert_eq!(dns(&out).len(), 5);
}

#[test]
fn server_size_limit_caps_non_admins_but_not_paging_or_admins() {
    let s = TestServer::start_with("size_limit = 3");
    s.seed(SEED);
    let url = s.ldap_url();
    let alice = ["-H", url.as_str(), "-D", ALICE_DN, "-w", ALICE_PW];
    let mut args = alice.to_vec();
    args.extend_from_slice(&["-b", BASE, "(objectClass=*)", "1.1"]);
    let out = s.ldapsearch(&args);
    assert_eq!(rc(&out), 4, "{}", text(&out));
    assert_eq!(dns(&out).len(), 3, "{}", text(&out));
    // a client limit below the server's wins
    let mut args = alice.to_vec();
    args.extend_from_slice(&["-z", "1", "-b", BASE, "(objectClass=*)", "1.1"]);
    let out = s.ldapsearch(&args);
    assert_eq!((rc(&out), dns(&out).len()), (4, 1), "{}", text(&out));
    // a search under the cap is fine
    let mut args = alice.to_vec();
    args.extend_from_slice(&["-b", BASE, "(|(cn=alice)(cn=bob))", "1.1"]);
    let out = s.ldapsearch(&args);
    assert_eq!((rc(&out), dns(&out).len()), (0, 2), "{}", text(&out));
    // paging is how a client reads more than the cap
    let mut args = alice.to_vec();
    args.extend_from_slice(&["-E", "pr=2/noprompt", "-b", BASE, "(objectClass=*)", "1.1"]);
    let out = s.ldapsearch(&args);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let paged = dns(&out).len();
    assert!(paged > 3, "paged search returns everything: {}", text(&out));
    // the administrator is not capped
    let out = s.search_as_admin(&["-b", BASE, "(objectClass=*)", "1.1"]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert_eq!(dns(&out).len(), paged);
}

#[test]
fn paged_results_across_pages_return_every_entry_once() {
    let s = TestServer::start_seeded();
    let plain = s.search_as_admin(&["-b", BASE, "(objectClass=*)", "1.1"]);
    assert_eq!(rc(&plain), 0);
    let out = s.search_as_admin(&["-E", "pr=2/noprompt", "-b", BASE, "(objectClass=*)", "1.1"]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let o = stdout(&out);
    let pages = o
        .lines()
        .filter(|l| l.starts_with("# pagedresults:"))
        .count();
    let expected = dns(&plain).len();
    assert!(expected >= 12, "{expected}");
    assert_eq!(pages, expected.div_ceil(2), "one control per page: {o}");
    assert!(
        o.lines()
            .last()
            .is_some_and(|l| l.trim() == "# pagedresults: cookie="),
        "last page has an empty cookie: {o}"
    );
    assert_eq!(
        sorted(dns(&out)),
        sorted(dns(&plain)),
        "same entries, each once"
    );
    // page size larger than the result: one page
    let out = s.search_as_admin(&[
        "-E",
        "pr=100/noprompt",
        "-b",
        PEOPLE,
        "-s",
        "one",
        "(objectClass=*)",
        "1.1",
    ]);
    assert_eq!(rc(&out), 0);
    assert_eq!(dns(&out).len(), 5);
    assert_eq!(stdout(&out).matches("# pagedresults:").count(), 1);
}

#[test]
fn paged_searches_interleave_on_one_connection_and_bad_cookies_fail() {
    let s = TestServer::start_seeded();
    let out = s.python(
        r#"
import sys
from ldap3 import Server, Connection
PAGED = '1.2.840.113556.1.4.319'
host, port = sys.argv[1].rsplit(':', 1)
c = Connection(Server(host, int(port)), 'cn=Administrator,cn=Users,dc=example,dc=com', 'Admin-Passw0rd!', auto_bind=True)

def page(base, size, cookie=None):
    ok = c.search(base, '(objectClass=*)', paged_size=size, paged_cookie=cookie, attributes=['1.1'])
    res = c.result
    ctl = (res.get('controls') or {}).get(PAGED)
    ck = ctl['value']['cookie'] if ctl else None
    return res['result'], [e.entry_dn for e in c.entries], ck

# two searches, pages interleaved on the same connection
seen_a, seen_b = [], []
rc, dns, ck_a = page('dc=example,dc=com', 3); assert rc == 0; seen_a += dns
rc, dns, ck_b = page('ou=People,dc=example,dc=com', 2); assert rc == 0; seen_b += dns
first_a = ck_a
while ck_a or ck_b:
    if ck_a:
        rc, dns, ck_a = page('dc=example,dc=com', 3, ck_a); assert rc == 0, rc; seen_a += dns
    if ck_b:
        rc, dns, ck_b = page('ou=People,dc=example,dc=com', 2, ck_b); assert rc == 0, rc; seen_b += dns
c.search('dc=example,dc=com', '(objectClass=*)', attributes=['1.1'])
all_a = [e.entry_dn for e in c.entries]
c.search('ou=People,dc=example,dc=com', '(objectClass=*)', attributes=['1.1'])
all_b = [e.entry_dn for e in c.entries]
assert sorted(seen_a) == sorted(all_a), (seen_a, all_a)
assert sorted(seen_b) == sorted(all_b), (seen_b, all_b)
assert len(set(seen_a)) == len(seen_a)
print('interleaved ok', len(seen_a), len(seen_b))

# a finished search's cookie is stale
rc, dns, _ = page('dc=example,dc=com', 3, first_a)
print('stale', rc, len(dns)); assert rc != 0 and not dns
# a forged cookie
for forged in [b'dirdPG\x00\x63', b'\x00' * 8, b'garbage-cookie-value', b'\xff' * 40]:
    rc, dns, _ = page('dc=example,dc=com', 3, forged)
    print('forged', forged, rc, len(dns)); assert rc != 0 and not dns
# a live cookie used with a different search
rc, dns, ck = page('dc=example,dc=com', 2); assert rc == 0 and ck
rc2, dns2, _ = page('ou=People,dc=example,dc=com', 2, ck)
print('mismatch', rc2, len(dns2)); assert rc2 != 0 and not dns2
# the connection is still usable
assert c.search('dc=example,dc=com', '(cn=alice)', attributes=['cn'])
print('after', len(c.entries)); assert len(c.entries) == 1
"#,
        &[&s.ldap.to_string()],
    );
    assert!(out.status.success(), "{}", text(&out));
    let o = stdout(&out);
    assert!(o.contains("interleaved ok"), "{o}");
    assert!(o.contains("after 1"), "{o}");
    // the stale/forged cookie result code is a real LDAP error
    for line in o
        .lines()
        .filter(|l| l.starts_with("stale") || l.starts_with("forged") || l.starts_with("mismatch"))
    {
        let code: i32 = line
            .split_whitespace()
            .rev()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("code");
        assert!(
            code == 2 || code == 53,
            "protocolError or unwillingToPerform: {line}"
        );
    }
}

#[test]
fn unknown_critical_control_is_12_and_non_critical_is_ignored() {
    let s = TestServer::start_seeded();
    let out = s.search_as_admin(&[
        "-E",
        "!1.2.3.4=:x",
        "-b",
        PEOPLE,
        "-s",
        "base",
        "(objectClass=*)",
        "1.1",
    ]);
    assert_eq!(rc(&out), 12, "unavailableCriticalExtension: {}", text(&out));
    assert!(dns(&out).is_empty());
    let out = s.search_as_admin(&[
        "-E",
        "1.2.3.4=:x",
        "-b",
        PEOPLE,
        "-s",
        "base",
        "(objectClass=*)",
        "1.1",
    ]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert_eq!(dns(&out), vec![PEOPLE.to_string()]);
    // on an extended operation too (ldapwhoami applies -e to the WhoAmI request)
    let out = s.whoami(&[
        "-H",
        &s.ldap_url(),
        "-e",
        "!1.2.3.4",
        "-D",
        ALICE_DN,
        "-w",
        ALICE_PW,
    ]);
    assert_ne!(rc(&out), 0, "{}", text(&out));
    assert!(
        text(&out).contains("Critical extension is unavailable (12)"),
        "{}",
        text(&out)
    );
    let out = s.whoami(&[
        "-H",
        &s.ldap_url(),
        "-e",
        "1.2.3.4",
        "-D",
        ALICE_DN,
        "-w",
        ALICE_PW,
    ]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
}

#[test]
fn manage_dsa_it_and_password_policy_controls_are_accepted() {
    let s = TestServer::start_seeded();
    let out = s.search_as_admin(&["-M", "-b", PEOPLE, "-s", "one", "(cn=alice)", "1.1"]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert_eq!(dns(&out), vec![ALICE_DN.to_string()]);
    let out = s.search_as_admin(&["-MM", "-b", PEOPLE, "-s", "one", "(cn=alice)", "1.1"]);
    assert_eq!(rc(&out), 0, "critical ManageDsaIT: {}", text(&out));
    let out = s.search_as_admin(&[
        "-e",
        "ppolicy",
        "-b",
        PEOPLE,
        "-s",
        "one",
        "(cn=alice)",
        "1.1",
    ]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    // ppolicy on the bind, as sssd sends it
    let out = s.whoami(&[
        "-H",
        &s.ldap_url(),
        "-e",
        "ppolicy",
        "-D",
        ALICE_DN,
        "-w",
        ALICE_PW,
    ]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert!(stdout(&out).contains(&format!("dn:{ALICE_DN}")));
    let out = s.whoami(&[
        "-H",
        &s.ldap_url(),
        "-e",
        "ppolicy",
        "-D",
        ALICE_DN,
        "-w",
        "bad",
    ]);
    assert_eq!(rc(&out), 49, "{}", text(&out));
}

#[test]
fn operational_attributes_with_plus() {
    let s = TestServer::start_seeded();
    let out = s.search_as_admin(&["-b", ALICE_DN, "-s", "base", "(objectClass=*)", "+"]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    let one = |a: &str| {
        let v = values(&out, a);
        assert_eq!(v.len(), 1, "{a} once in {}", text(&out));
        v[0].clone()
    };
    let uuid = one("entryUUID");
    assert_eq!(uuid.len(), 36, "{uuid}");
    assert_eq!(uuid.matches('-').count(), 4, "{uuid}");
    assert_eq!(one("entryDN"), ALICE_DN);
    for t in ["createTimestamp", "modifyTimestamp"] {
        let v = one(t);
        assert!(
            v.len() == 15 && v.ends_with('Z') && v[..14].bytes().all(|b| b.is_ascii_digit()),
            "{t}: {v}"
        );
    }
    assert_eq!(
        one("creatorsName").to_ascii_lowercase(),
        ADMIN_DN.to_ascii_lowercase()
    );
    assert_eq!(
        one("modifiersName").to_ascii_lowercase(),
        ADMIN_DN.to_ascii_lowercase()
    );
    let soc = one("structuralObjectClass");
    assert!(
        ["user", "inetOrgPerson"]
            .iter()
            .any(|c| c.eq_ignore_ascii_case(&soc)),
        "{soc}"
    );
    assert_eq!(one("hasSubordinates"), "FALSE");
    assert_eq!(
        one("subschemaSubentry").to_ascii_lowercase(),
        "cn=subschema"
    );
    let created: u64 = one("uSNCreated").parse().expect("uSNCreated is an integer");
    let changed: u64 = one("uSNChanged").parse().expect("uSNChanged is an integer");
    assert!(changed >= created && created > 0);
    assert_eq!(values(&out, "memberOf"), vec![format!("cn=devs,{PEOPLE}")]);
    // hasSubordinates TRUE on the OU; memberOf on a nested group
    let out = s.search_as_admin(&[
        "-b",
        PEOPLE,
        "-s",
        "base",
        "(objectClass=*)",
        "hasSubordinates",
    ]);
    assert_eq!(values(&out, "hasSubordinates"), vec!["TRUE"]);
    let out = s.search_as_admin(&[
        "-b",
        &format!("cn=ops,{PEOPLE}"),
        "-s",
        "base",
        "(objectClass=*)",
        "memberOf",
    ]);
    assert_eq!(values(&out, "memberOf"), vec![format!("cn=devs,{PEOPLE}")]);
    // a modify moves modifyTimestamp/uSNChanged/modifiersName, not the create ones
    let before_usn = changed;
    let m = s.tool_stdin(
        "ldapmodify",
        &["-x", "-H", &s.ldap_url(), "-D", ALICE_DN, "-w", ALICE_PW, "-ZZ"],
        Some(&format!("dn: {ALICE_DN}\nchangetype: modify\ndelete: userPassword\nuserPassword: {ALICE_PW}\n-\nadd: userPassword\nuserPassword: alice-New-1\n")),
    );
    assert_eq!(rc(&m), 0, "{}", text(&m));
    let out = s.search_as_admin(&["-b", ALICE_DN, "-s", "base", "(objectClass=*)", "+"]);
    let changed2: u64 = values(&out, "uSNChanged")[0].parse().expect("int");
    assert!(changed2 > before_usn, "{changed2} > {before_usn}");
    assert_eq!(
        values(&out, "uSNCreated")[0].parse::<u64>().expect("int"),
        created
    );
    assert_eq!(
        values(&out, "modifiersName")[0].to_ascii_lowercase(),
        ALICE_DN.to_ascii_lowercase()
    );
    assert_eq!(values(&out, "entryUUID")[0], uuid, "entryUUID is stable");
}

#[test]
fn root_dse_is_readable_anonymously_with_what_sssd_reads() {
    let s = TestServer::start_seeded();
    // exactly sssd's request
    let out = s.ldapsearch(&[
        "-H",
        &s.ldap_url(),
        "-b",
        "",
        "-s",
        "base",
        "(objectClass=*)",
        "*",
        "altServer",
        "namingContexts",
        "supportedControl",
        "supportedExtension",
        "supportedFeatures",
        "supportedLDAPVersion",
        "supportedSASLMechanisms",
        "domainControllerFunctionality",
        "defaultNamingContext",
        "lastUSN",
        "highestCommittedUSN",
    ]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert!(
        stdout(&out)
            .lines()
            .next()
            .is_some_and(|l| l.trim() == "dn:"),
        "{}",
        text(&out)
    );
    assert_eq!(values(&out, "namingContexts"), vec![BASE]);
    assert_eq!(values(&out, "defaultNamingContext"), vec![BASE]);
    assert_eq!(values(&out, "rootDomainNamingContext"), vec![BASE]);
    assert_eq!(values(&out, "supportedLDAPVersion"), vec!["3"]);
    let ctl = values(&out, "supportedControl");
    for c in [
        "1.2.840.113556.1.4.319",
        "2.16.840.1.113730.3.4.2",
        "1.3.6.1.4.1.42.2.27.8.5.1",
    ] {
        assert!(ctl.iter().any(|x| x == c), "supportedControl {c}: {ctl:?}");
    }
    let ext = values(&out, "supportedExtension");
    for e in [
        "1.3.6.1.4.1.1466.20037",
        "1.3.6.1.4.1.4203.1.11.3",
        "1.3.6.1.4.1.4203.1.11.1",
    ] {
        assert!(
            ext.iter().any(|x| x == e),
            "supportedExtension {e}: {ext:?}"
        );
    }
    let feat = values(&out, "supportedFeatures");
    assert!(
        feat.iter().any(|f| f == "1.3.6.1.4.1.4203.1.5.1"),
        "all operational attributes (+): {feat:?}"
    );
    assert_eq!(values(&out, "subschemaSubentry"), vec!["cn=Subschema"]);
    assert_eq!(values(&out, "vendorName"), vec!["dird"]);
    assert!(values(&out, "vendorVersion")[0].contains("dird"));
    let usn: u64 = values(&out, "highestCommittedUSN")[0].parse().expect("USN");
    assert!(usn > 0);
    assert!(values(&out, "dnsHostName")[0].ends_with(".example.com"));
    for a in [
        "configurationNamingContext",
        "schemaNamingContext",
        "ldapServiceName",
        "isSynchronized",
    ] {
        assert_eq!(values(&out, a).len(), 1, "{a}: {}", text(&out));
    }
    // the USN moves with writes
    s.modify_as_admin(
        &s.ldap_url(),
        &format!("dn: {PEOPLE}\nchangetype: modify\nreplace: description\ndescription: x\n"),
    );
    let out2 = s.ldapsearch(&[
        "-H",
        &s.ldap_url(),
        "-b",
        "",
        "-s",
        "base",
        "(objectClass=*)",
        "highestCommittedUSN",
    ]);
    let usn2: u64 = values(&out2, "highestCommittedUSN")[0]
        .parse()
        .expect("USN");
    assert!(usn2 > usn, "{usn2} > {usn}");
    // with no attribute list the rootDSE still answers over every transport
    {
        let url = s.ldaps_url();
        let out = s.ldapsearch(&[
            "-H",
            &url,
            "-b",
            "",
            "-s",
            "base",
            "(objectClass=*)",
            "namingContexts",
        ]);
        assert_eq!(values(&out, "namingContexts"), vec![BASE], "{}", text(&out));
    }
    let out = s.ldapsearch(&[
        "-ZZ",
        "-H",
        &s.ldap_url(),
        "-b",
        "",
        "-s",
        "base",
        "(objectClass=*)",
        "namingContexts",
    ]);
    assert_eq!(values(&out, "namingContexts"), vec![BASE], "{}", text(&out));
}

#[test]
fn subschema_publishes_types_classes_syntaxes_and_rules() {
    let s = TestServer::start();
    let out = s.ldapsearch(&[
        "-H",
        &s.ldap_url(),
        "-b",
        "cn=Subschema",
        "-s",
        "base",
        "(objectClass=subschema)",
        "attributeTypes",
        "objectClasses",
        "ldapSyntaxes",
        "matchingRules",
    ]);
    assert_eq!(rc(&out), 0, "anonymous subschema read: {}", text(&out));
    let o = stdout(&out);
    let at = values(&out, "attributeTypes");
    let oc = values(&out, "objectClasses");
    let syn = values(&out, "ldapSyntaxes");
    let mr = values(&out, "matchingRules");
    assert!(
        at.len() > 100 && oc.len() > 20 && syn.len() > 10 && mr.len() > 10,
        "{o}"
    );
    assert!(
        at.iter()
            .any(|a| a.contains("NAME 'cn'") || a.contains("'cn'")),
        "cn type"
    );
    assert!(
        at.iter().any(|a| a.contains("'sAMAccountName'")),
        "AD types"
    );
    assert!(
        at.iter().any(|a| a.contains("'memberUid'")),
        "RFC 2307 types"
    );
    for c in [
        "'inetOrgPerson'",
        "'user'",
        "'group'",
        "'posixAccount'",
        "'organizationalUnit'",
        "'computer'",
    ] {
        assert!(oc.iter().any(|x| x.contains(c)), "{c} in objectClasses");
    }
    for r in [
        "2.5.13.2",
        "2.5.13.5",
        "2.5.13.14",
        "2.5.13.27",
        "2.5.13.28",
        "2.5.13.1",
    ] {
        assert!(
            mr.iter().any(|x| x.starts_with(&format!("( {r} "))),
            "matching rule {r}"
        );
    }
    assert!(
        syn.iter()
            .any(|x| x.starts_with("( 1.3.6.1.4.1.1466.115.121.1.15 ")),
        "Directory String syntax"
    );
    // RFC 4512 form: each description is a parenthesised list
    assert!(at
        .iter()
        .chain(&oc)
        .chain(&syn)
        .chain(&mr)
        .all(|d| d.starts_with("( ") && d.ends_with(')')));
}

#[test]
fn anonymous_search_of_the_tree_is_refused_unless_configured() {
    let s = TestServer::start_seeded();
    for (label, url, tls) in [
        ("ldap", s.ldap_url(), false),
        ("starttls", s.ldap_url(), true),
        ("ldaps", s.ldaps_url(), false),
    ] {
        let mut args = vec!["-H", url.as_str(), "-b", BASE, "(cn=alice)"];
        if tls {
            args.insert(0, "-ZZ");
        }
        let out = s.ldapsearch(&args);
        assert_eq!(rc(&out), 50, "{label}: {}", text(&out));
        assert!(dns(&out).is_empty());
    }
    let out = s.ldapsearch(&["-H", &s.ldap_url(), "-b", ALICE_DN, "-s", "base"]);
    assert_eq!(rc(&out), 50, "{}", text(&out));
    // authenticated users read
    let out = s.ldapsearch(&[
        "-H",
        &s.ldap_url(),
        "-D",
        BOB_DN,
        "-w",
        BOB_PW,
        "-b",
        BASE,
        "(cn=alice)",
        "mail",
    ]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert_eq!(values(&out, "mail"), vec!["alice@example.com"]);

    let open = TestServer::start_with("anonymous_read = true");
    open.seed(SEED);
    let out = open.ldapsearch(&[
        "-H",
        &open.ldap_url(),
        "-b",
        BASE,
        "(cn=alice)",
        "mail",
        "userPassword",
    ]);
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert_eq!(dns(&out), vec![ALICE_DN.to_string()]);
    assert_eq!(values(&out, "mail"), vec!["alice@example.com"]);
    assert!(values(&out, "userPassword").is_empty());
}

#[test]
fn user_password_is_never_returned() {
    let s = TestServer::start_seeded();
    let url = s.ldap_url();
    let requests: &[&[&str]] = &[
        &[],
        &["*"],
        &["+"],
        &["*", "+"],
        &["userPassword"],
        &["USERPASSWORD"],
        &["userPassword;binary"],
        &["2.5.4.35"],
    ];
    for who in [(ADMIN_DN, ADMIN_PW), (ALICE_DN, ALICE_PW), (BOB_DN, BOB_PW)] {
        for attrs in requests {
            let mut args = vec![
                "-H",
                url.as_str(),
                "-D",
                who.0,
                "-w",
                who.1,
                "-b",
                PEOPLE,
                "(objectClass=*)",
            ];
            args.extend_from_slice(attrs);
            let out = s.ldapsearch(&args);
            assert_eq!(rc(&out), 0, "{}", text(&out));
            let o = stdout(&out).to_ascii_lowercase();
            assert!(
                !o.contains("userpassword") && !o.contains("argon2") && !o.contains("passw0rd"),
                "{} asking {attrs:?}: {o}",
                who.0
            );
        }
    }
    // -A (typesOnly) must not reveal it either, and a filter on it matches nothing useful
    let out = s.search_as_admin(&[
        "-A",
        "-b",
        ALICE_DN,
        "-s",
        "base",
        "(objectClass=*)",
        "userPassword",
        "*",
        "+",
    ]);
    assert!(
        !stdout(&out).to_ascii_lowercase().contains("userpassword"),
        "{}",
        text(&out)
    );
    let out = s.ldapsearch(&[
        "-H",
        &url,
        "-D",
        BOB_DN,
        "-w",
        BOB_PW,
        "-b",
        PEOPLE,
        "(userPassword=alice-Passw0rd)",
        "1.1",
    ]);
    assert!(
        dns(&out).is_empty(),
        "no password oracle through filters: {}",
        text(&out)
    );
    let out = s.ldapsearch(&[
        "-H",
        &url,
        "-D",
        BOB_DN,
        "-w",
        BOB_PW,
        "-b",
        PEOPLE,
        "(userPassword=*)",
        "1.1",
    ]);
    assert!(
        dns(&out).is_empty(),
        "no password oracle through presence: {}",
        text(&out)
    );
}
