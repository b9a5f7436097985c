//! Search (RFC 4511 §4.5) with paged results (RFC 2696): rootDSE and subschema reads,
//! attribute selection (`*`, `+`, `1.1`, names with options, case-insensitive) and typesOnly.

use crate::backend::Scope;
use crate::directory::paging::CursorError;
use tokio::sync::mpsc;

use crate::directory::SearchSpec;
use crate::ldap::controls::{BerValue, PagedResults};
use crate::ldap::ops::OpCtx;
use crate::ldap::proto::{
    LdapMessage, LdapResult, PartialAttribute, ProtocolOp, ResultCode, SearchResultEntry,
};
use crate::ldap::request::SearchReq;
use crate::ldap::{cldap, config_nc, netlogon, result, rootdse};
use crate::model::filter::base_attr;
use crate::model::{Entry, Schema};

/// Entry messages a search sends to the connection's writer at a time are those of one
/// backend batch; `out` is the writer's queue (None: everything is returned at the end).
pub(super) async fn search(
    ctx: &OpCtx<'_>,
    req: SearchReq,
    out: Option<&mpsc::Sender<Vec<LdapMessage>>>,
) -> Vec<LdapMessage> {
    let schema = ctx.dir.schema();
    // The NetLogon ping (MS-ADTS §6.3.3): a rootDSE search whose filter carries `NtVer`.
    if req.scope == Scope::Base && req.base.is_root() {
        if let Some(query) = netlogon::Query::from_filter(&req.filter) {
            return cldap::ping_answer(ctx.dir, ctx.msgid, &query, None).await;
        }
    }
    // The configuration partition (crossRef of the domain), built from the settings.
    if config_nc::holds(ctx.dir.domain(), &req.base) {
        let mut out: Vec<LdapMessage> = config_nc::search(ctx.dir.domain(), &req.base, req.scope)
            .into_iter()
            .filter(|e| req.filter.evaluate(e, schema).is_true())
            .map(|e| entry_message(ctx.msgid, e, &req, schema, false))
            .collect();
        let exists = config_nc::entries(ctx.dir.domain())
            .iter()
            .any(|e| e.dn.norm() == req.base.norm());
        let res = if !exists {
            LdapResult::new(ResultCode::NoSuchObject, "", "no such object")
        } else {
            LdapResult::success()
        };
        out.push(done(ctx.msgid, res, None));
        return out;
    }
    // rootDSE and subschema: readable by anyone (RFC 4512 §5.1, §4.4).
    if req.scope == Scope::Base && (req.base.is_root() || req.base.norm() == "cn=subschema") {
        let special = if req.base.is_root() {
            rootdse::root_dse(ctx.dir, &ctx.session.identity, ctx.now).await
        } else {
            rootdse::subschema(ctx.dir)
        };
        let mut out = Vec::new();
        if req.filter.evaluate(&special, schema).is_true()
            || req.base.is_root() && is_objectclass_present(&req)
        {
            let all_user = req.base.is_root();
            out.push(entry_message(ctx.msgid, special, &req, schema, all_user));
        }
        out.push(done(ctx.msgid, LdapResult::success(), None));
        return out;
    }
    let mut req = req;
    if ctx.session.global_catalog && req.base.is_root() {
        // The global catalog's root (MS-ADTS §3.1.1.1.8): "" below the rootDSE holds the
        // forest's naming contexts, which for dird is the one domain NC.
        req.base = ctx.dir.domain().base.clone();
        req.scope = match req.scope {
            Scope::One => Scope::Base,
            Scope::Children => Scope::Subtree,
            other => other,
        };
    }
    let spec = SearchSpec {
        base: req.base.clone(),
        scope: req.scope,
        filter: req.filter.clone(),
        size_limit: req.size_limit,
        time_limit: req.time_limit,
        attrs: req.attrs.clone(),
    };
    if let Some(paged) = &ctx.controls.paged {
        return paged_search(ctx, req, spec, paged.size, paged.cookie.to_vec()).await;
    }
    // Non-paged: entries go to the writer batch by batch as the directory finds them
    // (issue 15: the server never holds a large result whole; the writer's bounded queue
    // and the socket pace the backend).
    let mut stream = match ctx.dir.search_stream(&ctx.session.identity, spec).await {
        Ok(s) => s,
        Err(e) => return vec![done(ctx.msgid, result::result(&e), None)],
    };
    let mut held = Vec::new();
    while let Some(batch) = stream.next_batch().await {
        let msgs: Vec<LdapMessage> = batch
            .into_iter()
            .map(|e| entry_message(ctx.msgid, e, &req, schema, false))
            .collect();
        match out {
            // The connection is gone: nobody reads the rest (dropping the stream stops it).
            Some(tx) => {
                if tx.send(msgs).await.is_err() {
                    return Vec::new();
                }
            }
            None => held.extend(msgs),
        }
    }
    let res = match stream.finish().await {
        Ok(true) => LdapResult::new(ResultCode::SizeLimitExceeded, "", "size limit exceeded"),
        Ok(false) => LdapResult::success(),
        Err(e) => result::result(&e),
    };
    held.push(done(ctx.msgid, res, None));
    held
}

async fn paged_search(
    ctx: &OpCtx<'_>,
    req: SearchReq,
    spec: SearchSpec,
    size: u32,
    cookie: Vec<u8>,
) -> Vec<LdapMessage> {
    let cursor = if cookie.is_empty() {
        None
    } else {
        match ctx.session.take_cursor(&cookie) {
            Ok(c) => Some(c),
            // RFC 2696 leaves the code open: unwillingToPerform says "the server will not
            // continue this search" (cookie forged, used, finished, or its cursor released at
            // the server-wide or per-connection limit); the client restarts the search.
            Err(CursorError::Unknown) => {
                let r = LdapResult::new(
                    ResultCode::UnwillingToPerform,
                    "",
                    "paged results cookie is unknown, already used or released \
                     (cursor limit); restart the search",
                );
                return vec![done(ctx.msgid, r, None)];
            }
        }
    };
    match ctx
        .dir
        .search_page(&ctx.session.identity, spec, size, cursor)
        .await
    {
        Ok((page, next)) => {
            let schema = ctx.dir.schema();
            let mut out: Vec<LdapMessage> = page
                .entries
                .into_iter()
                .map(|e| entry_message(ctx.msgid, e, &req, schema, false))
                .collect();
            let cookie = match next {
                Some(c) => ctx.session.put_cursor(c),
                None => Vec::new(),
            };
            let estimate = u32::try_from(page.estimate).unwrap_or(u32::MAX);
            out.push(done(
                ctx.msgid,
                LdapResult::success(),
                Some(PagedResults::new(estimate, cookie)),
            ));
            out
        }
        Err(e) => vec![done(
            ctx.msgid,
            result::result(&e),
            Some(PagedResults::new(0, Vec::new())),
        )],
    }
}

fn is_objectclass_present(req: &SearchReq) -> bool {
    matches!(&req.filter, crate::model::Filter::Present(a) if a.eq_ignore_ascii_case("objectClass"))
}

fn done(msgid: u32, res: LdapResult, paged: Option<PagedResults>) -> LdapMessage {
    let msg = LdapMessage::new(msgid, ProtocolOp::SearchResultDone(res));
    match paged.map(|p| p.to_control(false)) {
        Some(Ok(c)) => msg.with_controls(vec![c]),
        _ => msg,
    }
}

/// Attribute selection per RFC 4511 §4.5.1.8 and RFC 3673: no list or `*` → user
/// attributes; `+` → operational ones and AD's system (NO-USER-MODIFICATION) ones; `1.1` alone → none; names match case-insensitively,
/// a name with options (`;binary`) returns the attribute under the requested description;
/// unknown names are ignored.
fn entry_message(msgid: u32, e: Entry, req: &SearchReq, schema: &Schema, all: bool) -> LdapMessage {
    let mut want_user = req.attrs.is_empty();
    let mut want_oper = false;
    let mut named: Vec<&str> = Vec::new();
    for a in &req.attrs {
        match a.as_str() {
            "*" => want_user = true,
            "+" => want_oper = true,
            "1.1" => {}
            other => named.push(other),
        }
    }
    // Each requested name is resolved once (base name and canonical name), and each stored
    // attribute's type once: the per-entry cost is one schema lookup per stored attribute,
    // not two per stored attribute and requested name (issue 14).
    let named: Vec<(&str, &str, Option<&str>)> = named
        .iter()
        .map(|n| {
            let b = base_attr(n);
            (*n, b, schema.canonical_name(b))
        })
        .collect();
    let mut attrs = Vec::new();
    let dn = e.dn.to_string();
    for attr in e.into_attrs() {
        let ty = schema.attribute(&attr.name);
        let operational = !all && ty.is_some_and(|t| t.is_operational());
        // AD keeps system attributes (uSNCreated, uSNChanged, objectGUID: NO-USER-MODIFICATION
        // but not USAGE directoryOperation) in `*`; `+` returns them as well (issue 2 §5).
        let system = want_oper && ty.is_some_and(|t| t.no_user_modification);
        let include = all && (want_user || want_oper)
            || (if operational {
                want_oper
            } else {
                want_user || system
            });
        if include {
            attrs.push(partial(&attr.name, attr.values, req.types_only));
        } else if let Some((n, _, _)) = named.iter().find(|(_, b, canonical)| {
            b.eq_ignore_ascii_case(&attr.name)
                || matches!((canonical, ty), (Some(c), Some(t)) if c.eq_ignore_ascii_case(t.name()))
        }) {
            attrs.push(partial(n, attr.values, req.types_only));
        }
    }
    LdapMessage::new(
        msgid,
        ProtocolOp::SearchResultEntry(SearchResultEntry::new(&dn, attrs)),
    )
}

fn partial(name: &str, values: Vec<Vec<u8>>, types_only: bool) -> PartialAttribute {
    if types_only {
        PartialAttribute::new(name, Vec::new())
    } else {
        PartialAttribute::new(name, values)
    }
}
