//! Directory sync over SCIM 2.0 against a real server: the request sequences Okta and
//! Microsoft Entra ID send when provisioning, and the decisions that follow; queries,
//! ETags, bad input; the leaver's revocations reaching an agent's delegated token; and
//! a SCIM change on one node enforced on another (PostgreSQL).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test fixtures fail loudly"
)]

mod common;

use common::{Client, code_flow, start};
use reqwest::Method;
use serde_json::{Value, json};
use warden_storage::testing::TestDb;

const DSL: &str = "model\n  schema 1.1\n\ntype user\n\ntype agent\n\ntype group\n  relations\n    define member: [user, group#member]\n\ntype document\n  relations\n    define viewer: [user, agent, group#member]\n";
const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// An organization `acme` with the model above; returns (admin, directory) clients.
async fn setup(server: &warden_server::Server) -> (Client, Client) {
    let admin = Client::new(server, server.bootstrap_key.as_deref().unwrap());
    let acme = admin.org_with_model("acme", DSL).await;
    let (s, key) = acme
        .post(
            "/v1/orgs/acme/keys",
            json!({"role": "directory", "name": "idp"}),
        )
        .await;
    assert_eq!(s, 201, "{key}");
    let dir = acme.with_key(key["token"].as_str().unwrap());
    (acme, dir)
}

async fn allowed(acme: &Client, user: &str, object: &str) -> bool {
    let (s, b) = acme
        .post(
            "/v1/orgs/acme/check",
            json!({"user": user, "relation": "viewer", "object": object}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    b["allowed"].as_bool().unwrap()
}

async fn patch(dir: &Client, path: &str, ops: Value) -> Value {
    let (s, b) = dir
        .patch(
            &format!("/scim/v2/acme/{path}"),
            json!({"schemas": [PATCH], "Operations": ops}),
        )
        .await;
    assert_eq!(s, 200, "PATCH {path}: {b}");
    b
}

async fn total(dir: &Client, path: &str) -> u64 {
    let (s, b) = dir.get(&format!("/scim/v2/acme/{path}")).await;
    assert_eq!(s, 200, "{b}");
    b["totalResults"].as_u64().unwrap()
}

async fn status_of(acme: &Client, user: &str) -> String {
    let (s, b) = acme.get(&format!("/v1/orgs/acme/users/{user}")).await;
    assert_eq!(s, 200, "{b}");
    b["status"].as_str().unwrap().to_string()
}

/// What Okta sends: lookup by userName, create, group create, member add/remove by
/// filter, deactivation by a path-less replace.
async fn okta(acme: &Client, dir: &Client) {
    let q = "/scim/v2/acme/Users?filter=userName%20eq%20%22anne%40acme.example%22&startIndex=1&count=100";
    let (s, b) = dir.get(q).await;
    assert_eq!((s, b["totalResults"].clone()), (200, json!(0)), "{b}");
    let (s, anne) = dir
        .post(
            "/scim/v2/acme/Users",
            json!({"schemas": [USER], "userName": "anne@acme.example",
                   "name": {"givenName": "Anne", "familyName": "Archer"},
                   "emails": [{"primary": true, "value": "anne@acme.example", "type": "work"}],
                   "displayName": "Anne Archer", "locale": "en-US", "externalId": "00u1",
                   "groups": [], "password": "a long okta-set password", "active": true}),
        )
        .await;
    assert_eq!(s, 201, "{anne}");
    let uid = anne["id"].as_str().unwrap().to_string();
    assert!(anne.get("password").is_none(), "never returned: {anne}");
    assert_eq!(anne["meta"]["resourceType"], "User");
    let (s, b) = dir.get(q).await;
    assert_eq!((s, b["totalResults"].clone()), (200, json!(1)), "{b}");
    // userName is unique, case-insensitively.
    let (s, e) = dir
        .post(
            "/scim/v2/acme/Users",
            json!({"schemas": [USER], "userName": "ANNE@acme.example"}),
        )
        .await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (409, Some("uniqueness")),
        "{e}"
    );

    let (s, eng) = dir
        .post(
            "/scim/v2/acme/Groups",
            json!({"schemas": [GROUP], "displayName": "Engineering", "members": []}),
        )
        .await;
    assert_eq!(s, 201, "{eng}");
    let gid = eng["id"].as_str().unwrap().to_string();
    let (s, w) = acme
        .post(
            "/v1/orgs/acme/tuples/write",
            json!({"writes": [{"user": format!("group:{gid}#member"), "relation": "viewer", "object": "document:roadmap"}]}),
        )
        .await;
    assert_eq!(s, 200, "{w}");
    let anne_subject = format!("user:{uid}");
    assert!(!allowed(acme, &anne_subject, "document:roadmap").await);

    // Joiner: added to the group, she gets exactly the group's access.
    let g = patch(
        dir,
        &format!("Groups/{gid}"),
        json!([{"op": "add", "path": "members", "value": [{"value": uid, "display": "anne@acme.example"}]}]),
    )
    .await;
    assert_eq!(g["members"][0]["value"], json!(uid), "{g}");
    assert!(allowed(acme, &anne_subject, "document:roadmap").await);
    assert!(!allowed(acme, &anne_subject, "document:other").await);
    let (_, u) = dir.get(&format!("/scim/v2/acme/Users/{uid}")).await;
    assert_eq!(u["groups"][0]["value"], json!(gid), "{u}");
    assert_eq!(u["groups"][0]["display"], json!("Engineering"));

    // Mover: removed by a filter, she loses it at the next check.
    patch(
        dir,
        &format!("Groups/{gid}"),
        json!([{"op": "remove", "path": format!("members[value eq \"{uid}\"]")}]),
    )
    .await;
    assert!(!allowed(acme, &anne_subject, "document:roadmap").await);
    patch(
        dir,
        &format!("Groups/{gid}"),
        json!([{"op": "add", "path": "members", "value": [{"value": uid}]},
               {"op": "replace", "value": {"id": gid, "displayName": "Engineering (all)"}}]),
    )
    .await;
    assert!(allowed(acme, &anne_subject, "document:roadmap").await);

    // Leaver: Okta deactivates with a path-less replace.
    let u = patch(
        dir,
        &format!("Users/{uid}"),
        json!([{"op": "replace", "value": {"active": false}}]),
    )
    .await;
    assert_eq!(u["active"], json!(false));
    assert!(u.get("groups").is_none(), "memberships removed: {u}");
    assert_eq!(status_of(acme, &uid).await, "suspended");
    assert!(!allowed(acme, &anne_subject, "document:roadmap").await);
    let (_, g) = dir.get(&format!("/scim/v2/acme/Groups/{gid}")).await;
    assert!(g.get("members").is_none(), "{g}");
}

/// What Microsoft Entra ID sends: capitalized ops, the enterprise extension, typed
/// email paths, member removal with a value list, `"False"` as a string, DELETE.
async fn entra(acme: &Client, dir: &Client) {
    let (s, bob) = dir
        .post(
            "/scim/v2/acme/Users",
            json!({"schemas": [USER, ENTERPRISE], "externalId": "bob", "userName": "bob@acme.example",
                   "active": true, "displayName": "Bob",
                   "emails": [{"primary": true, "type": "work", "value": "bob@acme.example"}],
                   "name": {"formatted": "Bob Baker", "familyName": "Baker", "givenName": "Bob"},
                   ENTERPRISE: {"department": "Sales", "employeeNumber": "42"}}),
        )
        .await;
    assert_eq!(s, 201, "{bob}");
    let uid = bob["id"].as_str().unwrap().to_string();
    assert_eq!(bob[ENTERPRISE]["department"], "Sales");
    let (s, sales) = dir
        .post(
            "/scim/v2/acme/Groups",
            json!({"schemas": [GROUP], "externalId": "sales-1", "displayName": "Sales"}),
        )
        .await;
    assert_eq!(s, 201, "{sales}");
    let gid = sales["id"].as_str().unwrap().to_string();
    acme.post(
        "/v1/orgs/acme/tuples/write",
        json!({"writes": [{"user": format!("group:{gid}#member"), "relation": "viewer", "object": "document:pipeline"}]}),
    )
    .await;
    patch(
        dir,
        &format!("Groups/{gid}"),
        json!([{"op": "Add", "path": "members", "value": [{"value": uid}]}]),
    )
    .await;
    let bob_subject = format!("user:{uid}");
    assert!(allowed(acme, &bob_subject, "document:pipeline").await);

    let u = patch(
        dir,
        &format!("Users/{uid}"),
        json!([
            {"op": "Replace", "path": "displayName", "value": "Bob B."},
            {"op": "Add", "path": "emails[type eq \"home\"].value", "value": "bob@home.example"},
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "robert@acme.example"},
            {"op": "Replace", "path": format!("{ENTERPRISE}:department"), "value": "Marketing"},
            {"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": "someone"},
            {"op": "Replace", "path": "name.givenName", "value": "Robert"}
        ]),
    )
    .await;
    assert_eq!(u["displayName"], "Bob B.");
    assert_eq!(u["name"]["givenName"], "Robert");
    assert_eq!(u[ENTERPRISE]["department"], "Marketing");
    assert_eq!(u[ENTERPRISE]["manager"]["value"], "someone");
    let emails = u["emails"].as_array().unwrap();
    assert!(
        emails.contains(&json!({"primary": true, "type": "work", "value": "robert@acme.example"})),
        "{u}"
    );
    assert!(
        emails.contains(&json!({"type": "home", "value": "bob@home.example"})),
        "{u}"
    );

    // Mover, Entra style: remove with a value list.
    patch(
        dir,
        &format!("Groups/{gid}"),
        json!([{"op": "Remove", "path": "members", "value": [{"value": uid}]}]),
    )
    .await;
    assert!(!allowed(acme, &bob_subject, "document:pipeline").await);
    patch(
        dir,
        &format!("Groups/{gid}"),
        json!([{"op": "Add", "path": "members", "value": [{"value": uid}]}]),
    )
    .await;
    assert!(allowed(acme, &bob_subject, "document:pipeline").await);

    // Leaver: soft delete (`active` "False"), then hard delete.
    let u = patch(
        dir,
        &format!("Users/{uid}"),
        json!([{"op": "Replace", "path": "active", "value": "False"}]),
    )
    .await;
    assert_eq!(u["active"], json!(false));
    assert!(!allowed(acme, &bob_subject, "document:pipeline").await);
    let (s, _, _) = dir
        .request(
            Method::DELETE,
            &format!("/scim/v2/acme/Users/{uid}"),
            &[],
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (s, e) = dir.get(&format!("/scim/v2/acme/Users/{uid}")).await;
    assert_eq!(s, 404, "{e}");
    assert_eq!(status_of(acme, &uid).await, "deprovisioned");
    // A deleted user cannot be made a member again.
    let (s, e) = dir
        .patch(
            &format!("/scim/v2/acme/Groups/{gid}"),
            json!({"schemas": [PATCH], "Operations": [{"op": "Add", "path": "members", "value": [{"value": uid}]}]}),
        )
        .await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (400, Some("invalidValue")),
        "{e}"
    );
    let (s, _, _) = dir
        .request(
            Method::DELETE,
            &format!("/scim/v2/acme/Groups/{gid}"),
            &[],
            None,
        )
        .await;
    assert_eq!(s, 204);
}

/// Filters, sorting, pagination, attribute selection and ETags.
async fn queries(dir: &Client) {
    for (name, family, title) in [
        ("carol", "Smith", "CEO"),
        ("dave", "Stone", "CTO"),
        ("erin", "Young", "CFO"),
        ("frank", "Sato", "Engineer"),
    ] {
        let (s, b) = dir
            .post(
                "/scim/v2/acme/Users",
                json!({"schemas": [USER], "userName": name, "title": title,
                       "name": {"familyName": family}, "emails": [{"value": format!("{name}@x.example"), "type": "work"}]}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }
    let names = |b: &Value| -> Vec<String> {
        b["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["userName"].as_str().unwrap_or("-").to_string())
            .collect()
    };
    let q = |f: &str| format!("/scim/v2/acme/Users?filter={}", urlencode(f));
    let (_, b) = dir
        .get(&(q("name.familyName sw \"s\" and not (title eq \"cto\")") + "&sortBy=userName"))
        .await;
    assert_eq!(names(&b), ["carol", "frank"], "{b}");
    let (_, b) = dir
        .get(
            &(q("title co \"c\" or emails[value ew \"@x.example\" and type eq \"work\"]")
                + "&sortBy=userName&sortOrder=descending&startIndex=2&count=2"),
        )
        .await;
    assert_eq!(b["totalResults"], 4, "{b}");
    assert_eq!(b["startIndex"], 2);
    assert_eq!(names(&b), ["erin", "dave"], "{b}");
    let (_, b) = dir
        .get(&(q("userName pr") + "&attributes=userName&count=1"))
        .await;
    let first = &b["Resources"][0];
    assert!(
        first.get("title").is_none() && first.get("userName").is_some(),
        "{first}"
    );
    let (_, b) = dir
        .get(&(q("meta.created gt \"2020-01-01T00:00:00Z\"") + "&excludedAttributes=emails,name"))
        .await;
    assert!(b["totalResults"].as_u64().unwrap() >= 4);
    assert!(b["Resources"][0].get("emails").is_none(), "{b}");
    // POST .search says the same as GET.
    let (s, b) = dir
        .post(
            "/scim/v2/acme/Users/.search",
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                   "filter": "title eq \"ceo\"", "attributes": ["userName"]}),
        )
        .await;
    assert_eq!((s, names(&b)), (200, vec!["carol".to_string()]), "{b}");

    // ETags: the version read is the one a conditional write must name.
    let (_, b) = dir.get(&q("userName eq \"carol\"")).await;
    let id = b["Resources"][0]["id"].as_str().unwrap().to_string();
    let path = format!("/scim/v2/acme/Users/{id}");
    let (s, h, u) = dir.request(Method::GET, &path, &[], None).await;
    assert_eq!(s, 200);
    let etag = h["etag"].to_str().unwrap().to_string();
    assert_eq!(u["meta"]["version"], json!(etag));
    let (s, _, _) = dir
        .request(Method::GET, &path, &[("if-none-match", &etag)], None)
        .await;
    assert_eq!(s, 304);
    let body = json!({"schemas": [USER], "userName": "carol", "title": "Chair"}).to_string();
    let (s, _, e) = dir
        .request(
            Method::PUT,
            &path,
            &[("if-match", "W/\"1\"")],
            Some(body.clone()),
        )
        .await;
    assert_eq!(s, 412, "{e}");
    let (s, h2, u) = dir
        .request(Method::PUT, &path, &[("if-match", &etag)], Some(body))
        .await;
    assert_eq!(s, 200, "{u}");
    assert_eq!(u["title"], "Chair");
    assert!(u.get("emails").is_none(), "PUT replaces: {u}");
    assert_ne!(h2["etag"], etag);
    let (s, _, _) = dir
        .request(Method::DELETE, &path, &[("if-match", &etag)], None)
        .await;
    assert_eq!(s, 412, "a stale ETag cannot delete");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Bad input: SCIM errors, and nothing written.
async fn bad_input(acme: &Client, dir: &Client, other_dir: &Client) {
    let users_before = total(dir, "Users").await;
    let groups_before = total(dir, "Groups").await;
    let cases: Vec<(Method, &str, String, u16, Option<&str>)> = vec![
        (
            Method::POST,
            "/scim/v2/acme/Users",
            "{not json".into(),
            400,
            Some("invalidSyntax"),
        ),
        (
            Method::POST,
            "/scim/v2/acme/Users",
            json!({"schemas": [USER], "userName": "x1", "shoeSize": 44}).to_string(),
            400,
            Some("invalidSyntax"),
        ),
        (
            Method::POST,
            "/scim/v2/acme/Users",
            json!({"userName": "x2"}).to_string(),
            400,
            Some("invalidSyntax"),
        ),
        (
            Method::POST,
            "/scim/v2/acme/Users",
            json!({"schemas": [USER], "userName": ["x3"]}).to_string(),
            400,
            Some("invalidValue"),
        ),
        (
            Method::POST,
            "/scim/v2/acme/Users",
            json!({"schemas": [USER], "userName": "x4", "active": "perhaps"}).to_string(),
            400,
            Some("invalidValue"),
        ),
        (
            Method::POST,
            "/scim/v2/acme/Users",
            json!({"schemas": [USER], "userName": "x5", "password": "short"}).to_string(),
            400,
            Some("invalidValue"),
        ),
        (
            Method::POST,
            "/scim/v2/acme/Groups",
            json!({"schemas": [GROUP], "displayName": "g", "members": [{"value": "no-such-user"}]})
                .to_string(),
            400,
            Some("invalidValue"),
        ),
        (
            Method::POST,
            "/scim/v2/acme/Groups",
            json!({"schemas": [GROUP]}).to_string(),
            400,
            Some("invalidValue"),
        ),
        (
            Method::POST,
            "/scim/v2/acme/Users",
            json!({"schemas": [USER], "userName": "x6", "title": "t".repeat(80_000)}).to_string(),
            413,
            Some("tooLarge"),
        ),
        (
            Method::GET,
            "/scim/v2/acme/Users?filter=userName%20eq%20%22a%22%20or%201%3D1%20--",
            String::new(),
            400,
            Some("invalidFilter"),
        ),
        (
            Method::GET,
            "/scim/v2/acme/Users?filter=userName%20eq%20%27a%27%3B%20DROP%20TABLE%20tuples",
            String::new(),
            400,
            Some("invalidFilter"),
        ),
        (
            Method::GET,
            "/scim/v2/acme/Users?filter=nosuch%20eq%20%22a%22",
            String::new(),
            400,
            Some("invalidFilter"),
        ),
        (
            Method::GET,
            "/scim/v2/acme/Users?sortBy=nosuch",
            String::new(),
            400,
            Some("invalidValue"),
        ),
        (
            Method::GET,
            "/scim/v2/acme/Users/does-not-exist",
            String::new(),
            404,
            None,
        ),
    ];
    for (method, path, body, status, scim_type) in cases {
        let body = (!body.is_empty()).then_some(body);
        let (s, h, e) = dir.request(method.clone(), path, &[], body).await;
        assert_eq!(s, status, "{method} {path}: {e}");
        assert_eq!(e["scimType"].as_str(), scim_type, "{method} {path}: {e}");
        assert_eq!(
            e["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
            "{e}"
        );
        assert!(
            h["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/scim+json")
        );
    }
    // A filter that is an injection attempt inside a string is just a value.
    let (s, b) = dir
        .get("/scim/v2/acme/Users?filter=userName%20eq%20%22x%27%20OR%20%271%27%3D%271%22")
        .await;
    assert_eq!((s, b["totalResults"].clone()), (200, json!(0)), "{b}");

    // Keys: another organization's directory key, the admin key, no key.
    let (s, e) = other_dir.get("/scim/v2/acme/Users").await;
    assert_eq!(s, 403, "{e}");
    assert_eq!(
        e["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    let (s, _) = other_dir
        .post(
            "/scim/v2/acme/Users",
            json!({"schemas": [USER], "userName": "intruder"}),
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = acme.get("/scim/v2/acme/Users").await;
    assert_eq!(s, 403, "an admin key is not a directory key");
    let (s, _) = dir.get("/v1/orgs/acme/tuples").await;
    assert_eq!(s, 403, "a directory key opens nothing but SCIM");
    let (s, _) = dir
        .with_key("wdn_nope_nope")
        .get("/scim/v2/acme/Users")
        .await;
    assert_eq!(s, 401);
    // A revoked directory key stops at once.
    let (_, k) = acme
        .post(
            "/v1/orgs/acme/keys",
            json!({"role": "directory", "name": "old"}),
        )
        .await;
    let old = dir.with_key(k["token"].as_str().unwrap());
    assert_eq!(old.get("/scim/v2/acme/Users").await.0, 200);
    let (s, _) = acme
        .delete(&format!("/v1/orgs/acme/keys/{}", k["id"].as_str().unwrap()))
        .await;
    assert_eq!(s, 204);
    assert_eq!(old.get("/scim/v2/acme/Users").await.0, 401);

    assert_eq!(total(dir, "Users").await, users_before, "nothing written");
    assert_eq!(total(dir, "Groups").await, groups_before, "nothing written");
}

async fn suite(url: &str) {
    let server = start(url).await;
    let (acme, dir) = setup(&server).await;
    let admin = Client::new(&server, server.bootstrap_key.as_deref().unwrap());
    let other = admin.org_with_model("globex", DSL).await;
    let (_, k) = other
        .post(
            "/v1/orgs/globex/keys",
            json!({"role": "directory", "name": "idp"}),
        )
        .await;
    let other_dir = other.with_key(k["token"].as_str().unwrap());

    // Discovery.
    let (s, spc) = dir.get("/scim/v2/acme/ServiceProviderConfig").await;
    assert_eq!(s, 200);
    assert_eq!(spc["patch"]["supported"], true);
    assert_eq!(spc["etag"]["supported"], true);
    let (_, rts) = dir.get("/scim/v2/acme/ResourceTypes").await;
    assert_eq!(rts["totalResults"], 2);
    let (_, user_schema) = dir.get(&format!("/scim/v2/acme/Schemas/{USER}")).await;
    assert_eq!(user_schema["id"], USER);

    okta(&acme, &dir).await;
    entra(&acme, &dir).await;
    queries(&dir).await;
    bad_input(&acme, &dir, &other_dir).await;

    // Every change is on the audit record, with its lifecycle event.
    let (_, log) = acme
        .get("/v1/orgs/acme/audit?kind=change&action=scim.user.patch&limit=1000")
        .await;
    let lifecycles: Vec<&str> = log["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["detail"]["lifecycle"].as_str())
        .collect();
    assert!(lifecycles.contains(&"leaver"), "{log}");
    let (_, log) = acme.get("/v1/orgs/acme/audit?kind=change&limit=1000").await;
    let text = log.to_string();
    for want in [
        "scim.user.create",
        "scim.group.patch",
        "scim.user.delete",
        "\"joiner\"",
        "\"mover\"",
    ] {
        assert!(text.contains(want), "{want} not recorded");
    }
    assert!(
        !text.contains("a long okta-set password"),
        "no password on the record"
    );
}

#[tokio::test]
async fn scim_provisioning_on_sqlite() {
    let db = TestDb::sqlite();
    suite(&db.url).await;
}

#[tokio::test]
async fn scim_provisioning_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    suite(&db.url).await;
}

/// An agent acting for a user with a delegated token: moved out of the group, the
/// agent's next decision is denied; deactivated, the token is dead at introspection
/// and at /authorize, its refresh token too, and it stays dead after reactivation.
#[tokio::test]
async fn a_leaver_takes_the_agents_delegated_token_down() {
    let db = TestDb::sqlite();
    let server = start(&db.url).await;
    let base = format!("http://{}", server.local_addr);
    let (acme, dir) = setup(&server).await;
    let (s, b) = acme
        .put(
            "/v1/orgs/acme/settings",
            json!({"scopes": {"docs.read": ["document#viewer"]},
                   "directory": {"suspend_agents_of_leavers": true}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let password = "correct horse battery staple";
    let (s, anne) = dir
        .post(
            "/scim/v2/acme/Users",
            json!({"schemas": [USER], "userName": "anne", "password": password}),
        )
        .await;
    assert_eq!(s, 201, "{anne}");
    let uid = anne["id"].as_str().unwrap().to_string();
    let (_, eng) = dir
        .post(
            "/scim/v2/acme/Groups",
            json!({"schemas": [GROUP], "displayName": "eng", "members": [{"value": uid}]}),
        )
        .await;
    let gid = eng["id"].as_str().unwrap().to_string();
    let (s, b) = acme
        .put(
            "/v1/orgs/acme/agents/bot",
            json!({"display_name": "Bot", "owner": format!("user:{uid}"), "allowed_scopes": ["docs.read"],
                   "redirect_uris": [REDIRECT]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (_, cred) = acme
        .post(
            "/v1/orgs/acme/agents/bot/credentials",
            json!({"kind": "secret"}),
        )
        .await;
    let secret = cred["secret"].as_str().unwrap().to_string();
    acme.post(
        "/v1/orgs/acme/tuples/write",
        json!({"writes": [
            {"user": format!("group:{gid}#member"), "relation": "viewer", "object": "document:plan"},
            {"user": "agent:bot", "relation": "viewer", "object": "document:plan"},
        ]}),
    )
    .await;

    let tok = code_flow(
        &base,
        "acme:bot",
        &secret,
        REDIRECT,
        &uid,
        password,
        "docs.read",
    )
    .await;
    let access = tok["access_token"]
        .as_str()
        .expect("access token")
        .to_string();
    let refresh = tok["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_string();
    let decide = || json!({"token": access, "relation": "viewer", "object": "document:plan"});
    let (_, d) = acme.post("/v1/orgs/acme/authorize", decide()).await;
    assert_eq!(d["allowed"], true, "{d}");

    // Mover: out of the group, the agent acting for her is denied at once.
    patch(
        &dir,
        &format!("Groups/{gid}"),
        json!([{"op": "remove", "path": format!("members[value eq \"{uid}\"]")}]),
    )
    .await;
    let (_, d) = acme.post("/v1/orgs/acme/authorize", decide()).await;
    assert_eq!(d["allowed"], false, "{d}");
    patch(
        &dir,
        &format!("Groups/{gid}"),
        json!([{"op": "add", "path": "members", "value": [{"value": uid}]}]),
    )
    .await;
    let (_, d) = acme.post("/v1/orgs/acme/authorize", decide()).await;
    assert_eq!(d["allowed"], true, "{d}");

    // Leaver.
    patch(
        &dir,
        &format!("Users/{uid}"),
        json!([{"op": "replace", "path": "active", "value": false}]),
    )
    .await;
    let introspect = |t: String| {
        let acme = acme.clone();
        async move {
            acme.post_form("/oauth2/introspect", &[("token", t.as_str())])
                .await
                .1
        }
    };
    assert_eq!(introspect(access.clone()).await["active"], false);
    let (_, d) = acme.post("/v1/orgs/acme/authorize", decide()).await;
    assert_eq!(d["allowed"], false, "{d}");
    let res = reqwest::Client::new()
        .post(format!("{base}/oauth2/token"))
        .basic_auth("acme%3Abot", Some(&secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    let e: Value = res.json().await.unwrap();
    assert_eq!(e["error"], "invalid_grant", "{e}");
    // The agent she owned is flagged and (by the organization's policy) suspended.
    let (_, bot) = acme.get("/v1/orgs/acme/agents/bot").await;
    assert_eq!(bot["status"], "suspended", "{bot}");
    assert!(bot["flag"].as_str().unwrap().contains(&uid), "{bot}");
    // The departure is one audit record naming what was revoked.
    let (_, log) = acme
        .get("/v1/orgs/acme/audit?kind=change&action=scim.user.patch&limit=10")
        .await;
    let leaver = log["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["detail"]["lifecycle"] == "leaver")
        .expect("a leaver record")
        .clone();
    assert_eq!(
        leaver["detail"]["leaver"]["memberships_removed"],
        json!([gid])
    );
    assert_eq!(leaver["detail"]["leaver"]["refresh_tokens_revoked"], 1);
    assert_eq!(
        leaver["detail"]["leaver"]["agents_flagged"],
        json!(["agent:bot"])
    );
    assert_eq!(leaver["user"], json!(format!("user:{uid}")));

    // Reactivated (and her agent too), the old token stays revoked.
    patch(
        &dir,
        &format!("Users/{uid}"),
        json!([{"op": "replace", "path": "active", "value": true}]),
    )
    .await;
    let (s, _) = acme
        .post(
            "/v1/orgs/acme/agents/bot/status",
            json!({"status": "active"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(introspect(access.clone()).await["active"], false);
    let (_, d) = acme.post("/v1/orgs/acme/authorize", decide()).await;
    assert_eq!(d["allowed"], false, "{d}");
}

/// Two nodes on one PostgreSQL database: a SCIM change on A is enforced on B when the
/// check names its revision, and soon without (measured and printed).
#[tokio::test]
async fn a_scim_change_on_one_node_is_enforced_on_the_other() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let a = start(&db.url).await;
    let (acme_a, dir_a) = setup(&a).await;
    let b = start(&db.url).await;
    let acme_b = Client::new(&b, &acme_a.key);
    let (_, u) = dir_a
        .post(
            "/scim/v2/acme/Users",
            json!({"schemas": [GROUP.replace("Group", "User")], "userName": "zoe"}),
        )
        .await;
    let uid = u["id"].as_str().unwrap().to_string();
    let (_, g) = dir_a
        .post(
            "/scim/v2/acme/Groups",
            json!({"schemas": [GROUP], "displayName": "ops"}),
        )
        .await;
    let gid = g["id"].as_str().unwrap().to_string();
    acme_a
        .post(
            "/v1/orgs/acme/tuples/write",
            json!({"writes": [{"user": format!("group:{gid}#member"), "relation": "viewer", "object": "document:runbook"}]}),
        )
        .await;
    let check_b = |revision: Option<i64>| {
        let acme_b = acme_b.clone();
        let user = format!("user:{uid}");
        async move {
            let mut body =
                json!({"user": user, "relation": "viewer", "object": "document:runbook"});
            if let Some(r) = revision {
                body["consistency"] = json!({"at_least_revision": r});
            }
            let (s, d) = acme_b.post("/v1/orgs/acme/check", body).await;
            assert_eq!(s, 200, "{d}");
            d["allowed"].as_bool().unwrap()
        }
    };
    let mut latencies = Vec::new();
    for round in 0..10 {
        let add = round % 2 == 0;
        let op = if add {
            json!([{"op": "add", "path": "members", "value": [{"value": uid}]}])
        } else {
            json!([{"op": "remove", "path": format!("members[value eq \"{uid}\"]")}])
        };
        let (s, h, body) = dir_a
            .request(
                Method::PATCH,
                &format!("/scim/v2/acme/Groups/{gid}"),
                &[],
                Some(json!({"schemas": [PATCH], "Operations": op}).to_string()),
            )
            .await;
        assert_eq!(s, 200, "{body}");
        let started = std::time::Instant::now();
        // The ETag is the revision of the write.
        let etag = h["etag"].to_str().unwrap();
        let revision: i64 = etag
            .trim_start_matches("W/\"")
            .trim_end_matches('"')
            .parse()
            .unwrap();
        if round % 4 < 2 {
            // Named revision: exact at once.
            assert_eq!(
                check_b(Some(revision)).await,
                add,
                "round {round} at revision {revision}"
            );
        } else {
            // No revision: B converges on its own (LISTEN/NOTIFY, then polling).
            let mut converged = false;
            while started.elapsed() < std::time::Duration::from_secs(5) {
                if check_b(None).await == add {
                    converged = true;
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            assert!(converged, "round {round}: node B never saw the change");
            latencies.push(started.elapsed());
        }
    }
    println!("SCIM change on node A enforced on node B without a revision after: {latencies:?}");
}

/// The directory and the administrator share a user: an administrator's suspension
/// survives routine directory updates; a deactivation from the directory afterwards
/// still withdraws memberships; inactive users are not added to groups.
#[tokio::test]
async fn directory_updates_respect_an_administrators_suspension() {
    let db = TestDb::sqlite();
    let server = start(&db.url).await;
    let (acme, dir) = setup(&server).await;
    let (_, u) = dir
        .post(
            "/scim/v2/acme/Users",
            json!({"schemas": [USER], "userName": "gus"}),
        )
        .await;
    let uid = u["id"].as_str().unwrap().to_string();
    let (_, g) = dir
        .post(
            "/scim/v2/acme/Groups",
            json!({"schemas": [GROUP], "displayName": "ops", "members": [{"value": uid}]}),
        )
        .await;
    let gid = g["id"].as_str().unwrap().to_string();
    assert_eq!(g["members"][0]["value"], json!(uid), "{g}");
    let (s, _) = acme
        .post(
            &format!("/v1/orgs/acme/users/{uid}/status"),
            json!({"status": "suspended"}),
        )
        .await;
    assert_eq!(s, 200);
    // A routine update that does not mention `active` leaves the suspension alone.
    patch(
        &dir,
        &format!("Users/{uid}"),
        json!([{"op": "replace", "path": "title", "value": "SRE"}]),
    )
    .await;
    assert_eq!(status_of(&acme, &uid).await, "suspended");
    // The directory deactivating them now is a departure: memberships go.
    patch(
        &dir,
        &format!("Users/{uid}"),
        json!([{"op": "replace", "path": "active", "value": false}]),
    )
    .await;
    let (_, g) = dir.get(&format!("/scim/v2/acme/Groups/{gid}")).await;
    assert!(g.get("members").is_none(), "{g}");
    // An inactive user named as a member is not added (and the write says so).
    let g = patch(
        &dir,
        &format!("Groups/{gid}"),
        json!([{"op": "add", "path": "members", "value": [{"value": uid}]}]),
    )
    .await;
    assert!(g.get("members").is_none(), "{g}");
    let (_, log) = acme
        .get("/v1/orgs/acme/audit?kind=change&action=scim.group.patch&limit=10")
        .await;
    assert!(
        log.to_string().contains("members_skipped_inactive"),
        "{log}"
    );
    let last = log["records"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last["detail"]["members_skipped_inactive"],
        json!([format!("user:{uid}")]),
        "{last}"
    );
    // The directory reactivating explicitly does reactivate.
    patch(
        &dir,
        &format!("Users/{uid}"),
        json!([{"op": "replace", "path": "active", "value": true}]),
    )
    .await;
    assert_eq!(status_of(&acme, &uid).await, "active");
}
