#!/usr/bin/env python3
"""Main LDAP flows against dird with python3-ldap3, an independent client library.

Usage: ldap3_flows.py HOST:LDAP_PORT HOST:LDAPS_PORT CA_FILE
Exits non-zero (AssertionError / exception) on the first failure; prints one line per step.
"""
import ssl
import sys

from ldap3 import (ALL, BASE, LEVEL, MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE, NONE, SUBTREE,
                   Connection, Server, Tls)
from ldap3.core.exceptions import LDAPException

BASE_DN = 'dc=example,dc=com'
ADMIN = 'cn=Administrator,cn=Users,dc=example,dc=com'
ADMIN_PW = 'Admin-Passw0rd!'
PEOPLE = 'ou=People,dc=example,dc=com'
ALICE = 'cn=alice,ou=People,dc=example,dc=com'


def step(name, ok, detail=''):
    print(('ok   ' if ok else 'FAIL ') + name + (': ' + str(detail) if detail else ''), flush=True)
    if not ok:
        sys.exit(1)


def main():
    ldap_addr, ldaps_addr, ca = sys.argv[1], sys.argv[2], sys.argv[3]
    host, port = ldap_addr.rsplit(':', 1)
    shost, sport = ldaps_addr.rsplit(':', 1)
    tls = Tls(ca_certs_file=ca, validate=ssl.CERT_REQUIRED)
    plain = Server(host, int(port), tls=tls, get_info=ALL)
    secure = Server(shost, int(sport), use_ssl=True, tls=tls, get_info=ALL)

    # rootDSE and schema, read anonymously by get_info=ALL
    anon = Connection(plain, auto_bind=True)
    step('rootDSE naming contexts', BASE_DN in anon.server.info.naming_contexts, anon.server.info.naming_contexts)
    step('rootDSE paged control', '1.2.840.113556.1.4.319' in [c[0] for c in anon.server.info.supported_controls])
    step('schema has user', anon.server.schema is not None and 'user' in anon.server.schema.object_classes)
    step('anonymous whoami', anon.extend.standard.who_am_i() in (None, '', 'anonymous'))
    anon.search(BASE_DN, '(objectClass=*)', SUBTREE)
    step('anonymous tree search refused', anon.result['result'] == 50, anon.result)
    anon.unbind()

    # simple binds: DN, UPN, down-level name; a wrong password
    for name in (ALICE, 'alice@example.com', 'EXAMPLE\\alice'):
        c = Connection(plain, name, 'alice-Passw0rd')
        step('bind ' + name, c.bind(), c.result)
        step('whoami ' + name, c.extend.standard.who_am_i() == 'dn:' + ALICE)
        c.unbind()
    bad = Connection(plain, ALICE, 'wrong')
    step('bad password is 49', not bad.bind() and bad.result['result'] == 49, bad.result)
    step('AD text data 52e', 'data 52e' in bad.result['message'], bad.result['message'])

    # admin over StartTLS
    # check_names=False: let the server, not ldap3's schema cache, judge unknown names
    adm = Connection(plain, ADMIN, ADMIN_PW, check_names=False)
    adm.open()
    step('StartTLS', adm.start_tls(), adm.result)
    step('admin bind over StartTLS', adm.bind(), adm.result)
    step('admin whoami', adm.extend.standard.who_am_i() == 'dn:' + ADMIN)

    # search: scopes, filters, attribute lists
    adm.search(PEOPLE, '(objectClass=*)', BASE)
    step('base scope', [e.entry_dn for e in adm.entries] == [PEOPLE])
    adm.search(PEOPLE, '(objectClass=user)', LEVEL, attributes=['cn', 'mail', 'objectGUID'])
    step('one scope users', sorted(str(e.cn) for e in adm.entries) == ['alice', 'bob', 'carol'], adm.entries)
    guid = [e for e in adm.entries if str(e.cn) == 'alice'][0].objectGUID.raw_values[0]
    escaped = ''.join('\\%02x' % b for b in guid)
    adm.search(BASE_DN, '(objectGUID=%s)' % escaped, SUBTREE)
    step('binary objectGUID filter', [e.entry_dn for e in adm.entries] == [ALICE], escaped)
    adm.search(BASE_DN, '(memberOf:1.2.840.113556.1.4.1941:=cn=devs,ou=People,dc=example,dc=com)', SUBTREE,
               attributes=['cn'])
    step('IN_CHAIN', sorted(str(e.cn) for e in adm.entries) == ['alice', 'bob', 'ops'], adm.entries)
    adm.search(BASE_DN, '(&(objectClass=sudoRole)(|(sudoHost=ALL)(sudoHost=+*)))', SUBTREE)
    step('unknown-attribute filter', adm.result['result'] == 0 and not adm.entries, adm.result)
    adm.search(ALICE, '(objectClass=*)', BASE, attributes=['+'])
    e = adm.response[0]['attributes']
    step('operational attributes', all(k in e for k in ('entryUUID', 'createTimestamp', 'memberOf')), list(e))
    adm.search(ALICE, '(objectClass=*)', BASE, attributes=['*', '+', 'userPassword'])
    raw = adm.response[0]['raw_attributes']
    step('no userPassword', not any(k.lower().startswith('userpassword') and v for k, v in raw.items()), raw.keys())

    # paged search over the whole tree, via the generator
    plain_all = adm.search(BASE_DN, '(objectClass=*)', SUBTREE, attributes=['1.1']) and len(adm.entries)
    pages = list(adm.extend.standard.paged_search(BASE_DN, '(objectClass=*)', SUBTREE, attributes=['1.1'],
                                                  paged_size=3, generator=False))
    dns = [p['dn'] for p in pages if p['type'] == 'searchResEntry']
    step('paged search', len(dns) == plain_all and len(set(dns)) == len(dns), (len(dns), plain_all))

    # add, modify, compare, modify DN, delete
    dn = 'cn=py-user,' + PEOPLE
    step('add', adm.add(dn, ['top', 'person', 'organizationalPerson', 'user'],
                        {'cn': 'py-user', 'sn': 'Python', 'sAMAccountName': 'py-user',
                         'description': ['a', 'b'], 'userPassword': 'py-Passw0rd-1'}), adm.result)
    step('add existing is 68', not adm.add(dn, ['person'], {'cn': 'py-user', 'sn': 'x'})
         and adm.result['result'] == 68, adm.result)
    step('modify', adm.modify(dn, {'description': [(MODIFY_DELETE, ['a'])],
                                   'sn': [(MODIFY_REPLACE, ['Py'])],
                                   'mail': [(MODIFY_ADD, ['py@example.com'])]}), adm.result)
    adm.search(dn, '(objectClass=*)', BASE, attributes=['description', 'sn', 'mail'])
    a = adm.entries[0]
    step('modify read back', a.description.values == ['b'] and a.sn.value == 'Py' and a.mail.value == 'py@example.com',
         a)
    # ldap3 validates values against the subschema it read; a schema-less connection lets
    # the server judge
    raw = Connection(Server(host, int(port), get_info=NONE), ADMIN, ADMIN_PW, auto_bind=True)
    step('modify bad syntax is 21', not raw.modify(dn, {'userAccountControl': [(MODIFY_REPLACE, ['abc'])]})
         and raw.result['result'] == 21, raw.result)
    raw.unbind()
    step('compare TRUE', adm.compare(dn, 'sn', 'Py') is True, adm.result)
    step('compare FALSE', adm.compare(dn, 'sn', 'No') is False and adm.result['result'] == 5, adm.result)
    step('modify DN', adm.modify_dn(dn, 'cn=py-renamed'), adm.result)
    dn = 'cn=py-renamed,' + PEOPLE
    step('delete non-leaf is 66', not adm.delete(PEOPLE) and adm.result['result'] == 66, adm.result)

    # Password Modify (RFC 3062): self-service over LDAPS with old and new, then generated
    u = Connection(secure, dn, 'py-Passw0rd-1')
    step('user bind over LDAPS', u.bind(), u.result)
    step('password modify (old+new)',
         u.extend.standard.modify_password(dn, 'py-Passw0rd-1', 'py-Passw0rd-2') is True, u.result)
    u.unbind()
    u = Connection(secure, dn, 'py-Passw0rd-2')
    step('bind with the new password', u.bind(), u.result)
    gen = u.extend.standard.modify_password(None, 'py-Passw0rd-2')
    step('generated password', isinstance(gen, str) and len(gen) >= 12, (gen, u.result))
    u.unbind()
    u = Connection(secure, 'EXAMPLE\\py-user', gen)
    step('bind with the generated password', u.bind(), u.result)
    u.unbind()
    # over cleartext: confidentialityRequired
    u = Connection(plain, dn, gen)
    step('bind over cleartext', u.bind(), u.result)
    r = u.extend.standard.modify_password(dn, gen, 'py-Passw0rd-3')
    step('password modify over cleartext is 13', r is False and u.result['result'] == 13, u.result)
    u.unbind()

    step('delete', adm.delete(dn), adm.result)
    adm.search(dn, '(objectClass=*)', BASE)
    step('deleted entry is 32', adm.result['result'] == 32, adm.result)
    adm.unbind()
    print('all flows passed')


if __name__ == '__main__':
    try:
        main()
    except LDAPException as e:
        print('FAIL ldap3 exception: %r' % e)
        sys.exit(2)
