//! The catalogue: admin CRUD, validation, isolation, and the public listing.

use http::{Method, StatusCode};
use mpanel::auth::Role;
use mpanel_tests::{TestApp, TestResponse, request, spawn_app};
use serde_json::{Value, json};

struct Catalog {
    app: TestApp,
    token: String,
    tenant: uuid::Uuid,
}

impl Catalog {
    async fn new() -> Catalog {
        let app = spawn_app().await;
        let tenant = app.create_tenant("acme").await;
        let token = app.token(&app.create_user(tenant, Role::Billing).await).await;
        Catalog { app, token, tenant }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> TestResponse {
        self.app.authed(method, path, &self.token, body).await
    }

    async fn product(&self, slug: &str, product_type: &str) -> String {
        let r = self
            .call(Method::POST, "/api/products", Some(json!({"name": slug, "slug": slug, "type": product_type})))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.body));
        r.json()["id"].as_str().expect("id").to_string()
    }

    async fn price(&self, product: &str, slug: &str, amount: i64, popular: bool) -> String {
        let r = self
            .call(
                Method::POST,
                &format!("/api/products/{product}/prices"),
                Some(json!({"name": slug, "slug": slug, "interval": "MONTHLY", "amountCents": amount,
                            "currency": "USD", "isPopular": popular})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.body));
        r.json()["id"].as_str().expect("id").to_string()
    }

    async fn public(&self, tenant: &str) -> TestResponse {
        self.app.get(&format!("/api/public/products?tenant={tenant}")).await
    }
}

fn fields(response: &TestResponse) -> Vec<String> {
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", String::from_utf8_lossy(&response.body));
    assert_eq!(response.header("content-type"), Some("application/problem+json"));
    response.json()["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().expect("field").to_string())
        .collect()
}

#[tokio::test]
async fn product_validation_names_each_field() {
    let c = Catalog::new().await;
    let valid = json!({"name": "Starter", "slug": "starter", "type": "SHARED_HOSTING", "description": "d", "limits": {"emails": 5}});
    let cases: Vec<(&str, Value)> = vec![
        ("slug", json!("Starter")),
        ("slug", json!("-starter")),
        ("slug", json!("star--ter")),
        ("slug", json!("star_ter")),
        ("slug", json!("")),
        ("slug", json!("x".repeat(65))),
        ("slug", json!(42)),
        ("name", json!("")),
        ("name", json!("   ")),
        ("name", json!("n".repeat(201))),
        ("type", json!("shared_hosting")),
        ("type", json!("WEBSITE")),
        ("description", json!("d".repeat(5001))),
        ("limits", json!({"emails": -1})),
        ("limits", json!({"emails": 1.5})),
        ("limits", json!({"emails": "5"})),
        ("limits", json!([1, 2])),
    ];
    for (field, value) in cases {
        let mut body = valid.clone();
        body[field] = value.clone();
        let r = c.call(Method::POST, "/api/products", Some(body)).await;
        assert_eq!(fields(&r), [field], "{field} = {value}");
    }
    for required in ["name", "slug", "type"] {
        let mut body = valid.clone();
        body.as_object_mut().expect("object").remove(required);
        let r = c.call(Method::POST, "/api/products", Some(body)).await;
        assert_eq!(fields(&r), [required]);
    }
    let mut body = valid.clone();
    body["providerPriceId"] = json!("price_123");
    assert_eq!(fields(&c.call(Method::POST, "/api/products", Some(body)).await), ["providerPriceId"]);
    // Every problem at once.
    let r = c.call(Method::POST, "/api/products", Some(json!({"slug": "Bad", "type": "X"}))).await;
    assert_eq!(fields(&r), ["name", "slug", "type"]);
    let count: i64 = c.app.db().await.query_one("SELECT count(*) FROM products", &[]).await.expect("count").get(0);
    assert_eq!(count, 0, "an invalid request wrote something");
    // And the valid body works.
    assert_eq!(c.call(Method::POST, "/api/products", Some(valid)).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn price_validation_names_each_field() {
    let c = Catalog::new().await;
    let product = c.product("starter", "SHARED_HOSTING").await;
    let path = format!("/api/products/{product}/prices");
    let valid = json!({"name": "Monthly", "slug": "starter-monthly", "interval": "MONTHLY", "amountCents": 999, "currency": "USD"});
    let cases: Vec<(&str, Value)> = vec![
        ("amountCents", json!(-1)),
        ("amountCents", json!(9.99)),
        ("amountCents", json!("999")),
        ("amountCents", json!(null)),
        ("currency", json!("usd")),
        ("currency", json!("ABC")),
        ("currency", json!("US")),
        ("currency", json!("XXX")),
        ("interval", json!("WEEKLY")),
        ("interval", json!("monthly")),
        ("slug", json!("Starter Monthly")),
        ("name", json!("")),
        ("isPopular", json!("yes")),
    ];
    for (field, value) in cases {
        let mut body = valid.clone();
        body[field] = value.clone();
        assert_eq!(fields(&c.call(Method::POST, &path, Some(body)).await), [field], "{field} = {value}");
    }
    let ok = c.call(Method::POST, &path, Some(valid.clone())).await;
    assert_eq!(ok.status, StatusCode::CREATED);
    let price = ok.json();
    assert_eq!(price["amountCents"], 999);
    assert_eq!(price["currency"], "USD");
    assert_eq!(price["isPopular"], false);
    assert!(price.get("providerPriceId").is_none());
    // Zero is a valid amount (free plans).
    let mut free = valid.clone();
    free["slug"] = json!("starter-free");
    free["amountCents"] = json!(0);
    assert_eq!(c.call(Method::POST, &path, Some(free)).await.status, StatusCode::CREATED);
    // Unknown product → 404.
    let missing = format!("/api/products/{}/prices", uuid::Uuid::new_v4());
    assert_eq!(c.call(Method::POST, &missing, Some(valid)).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn slugs_are_unique_per_tenant() {
    let c = Catalog::new().await;
    let product = c.product("starter", "SHARED_HOSTING").await;
    let again =
        c.call(Method::POST, "/api/products", Some(json!({"name": "Again", "slug": "starter", "type": "DNS"}))).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.json()["errors"][0]["field"], "slug");

    c.price(&product, "starter-monthly", 999, false).await;
    let other_product = c.product("other", "DNS").await;
    let clash = c
        .call(
            Method::POST,
            &format!("/api/products/{other_product}/prices"),
            Some(json!({"name": "x", "slug": "starter-monthly", "interval": "YEARLY", "amountCents": 1, "currency": "EUR"})),
        )
        .await;
    assert_eq!(clash.status, StatusCode::CONFLICT);
    assert_eq!(clash.json()["errors"][0]["field"], "slug");

    // Renaming into a taken slug is a conflict too.
    let rename =
        c.call(Method::PATCH, &format!("/api/products/{other_product}"), Some(json!({"slug": "starter"}))).await;
    assert_eq!(rename.status, StatusCode::CONFLICT);

    // Another tenant may use the same slugs.
    let b = c.app.create_tenant("bravo").await;
    let b_token = c.app.token(&c.app.create_user(b, Role::Admin).await).await;
    let theirs = c
        .app
        .authed(Method::POST, "/api/products", &b_token, Some(json!({"name": "S", "slug": "starter", "type": "DNS"})))
        .await;
    assert_eq!(theirs.status, StatusCode::CREATED);
}

#[tokio::test]
async fn patch_changes_only_what_was_sent_and_delete_is_soft() {
    let c = Catalog::new().await;
    let created = c
        .call(
            Method::POST,
            "/api/products",
            Some(json!({"name": "Starter", "slug": "starter", "type": "SHARED_HOSTING", "description": "Small", "limits": {"emails": 5}})),
        )
        .await
        .json();
    let id = created["id"].as_str().expect("id");
    let path = format!("/api/products/{id}");

    let renamed = c.call(Method::PATCH, &path, Some(json!({"name": "Starter Plus"}))).await;
    assert_eq!(renamed.status, StatusCode::OK);
    let renamed = renamed.json();
    assert_eq!(renamed["name"], "Starter Plus");
    for unchanged in ["slug", "type", "description", "limits", "isActive"] {
        assert_eq!(renamed[unchanged], created[unchanged], "{unchanged} changed");
    }
    let cleared = c.call(Method::PATCH, &path, Some(json!({"description": null}))).await.json();
    assert!(cleared["description"].is_null());
    assert_eq!(cleared["name"], "Starter Plus");
    let bad = c.call(Method::PATCH, &path, Some(json!({"limits": {"emails": -5}, "type": "NOPE"}))).await;
    assert_eq!(fields(&bad), ["type", "limits"]);

    let price = c.price(id, "starter-monthly", 999, false).await;
    let repriced = c.call(Method::PATCH, &format!("/api/prices/{price}"), Some(json!({"amountCents": 1299}))).await;
    assert_eq!(repriced.status, StatusCode::OK);
    let repriced = repriced.json();
    assert_eq!(repriced["amountCents"], 1299);
    assert_eq!(repriced["slug"], "starter-monthly");
    assert_eq!(repriced["currency"], "USD");

    assert_eq!(c.call(Method::DELETE, &format!("/api/prices/{price}"), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(c.call(Method::DELETE, &path, None).await.status, StatusCode::NO_CONTENT);
    let after = c.call(Method::GET, &path, None).await;
    assert_eq!(after.status, StatusCode::OK, "soft delete keeps the row");
    let after = after.json();
    assert_eq!(after["isActive"], false);
    assert_eq!(after["prices"][0]["isActive"], false);

    let db = c.app.db().await;
    let actions: Vec<String> = db
        .query(
            "SELECT action FROM audit_logs WHERE tenant_id = $1 AND action LIKE 'p%' ORDER BY created_at, id",
            &[&c.tenant],
        )
        .await
        .expect("audit")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        actions,
        [
            "product.created",
            "product.updated",
            "product.updated",
            "price.created",
            "price.updated",
            "price.deleted",
            "product.deleted"
        ]
    );
    let detail: Value = db
        .query_one("SELECT details FROM audit_logs WHERE action = 'price.updated'", &[])
        .await
        .expect("detail")
        .get(0);
    assert_eq!(detail, json!({"amountCents": 1299}));
}

#[tokio::test]
async fn tenants_cannot_see_or_touch_each_others_catalogue() {
    let c = Catalog::new().await;
    let mine = c.product("mine", "SHARED_HOSTING").await;
    c.price(&mine, "mine-monthly", 500, false).await;

    let b = c.app.create_tenant("bravo").await;
    let b_token = c.app.token(&c.app.create_user(b, Role::Admin).await).await;
    let theirs = c
        .app
        .authed(
            Method::POST,
            "/api/products",
            &b_token,
            Some(json!({"name": "Theirs", "slug": "theirs", "type": "DNS"})),
        )
        .await
        .json()["id"]
        .as_str()
        .expect("id")
        .to_string();
    let their_price = c
        .app
        .authed(
            Method::POST,
            &format!("/api/products/{theirs}/prices"),
            &b_token,
            Some(json!({"name": "T", "slug": "theirs-monthly", "interval": "MONTHLY", "amountCents": 100, "currency": "USD"})),
        )
        .await
        .json()["id"]
        .as_str()
        .expect("id")
        .to_string();

    let path = format!("/api/products/{theirs}");
    assert_eq!(c.call(Method::GET, &path, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(c.call(Method::PATCH, &path, Some(json!({"name": "mine now"}))).await.status, StatusCode::NOT_FOUND);
    assert_eq!(c.call(Method::DELETE, &path, None).await.status, StatusCode::NOT_FOUND);
    let add = c
        .call(
            Method::POST,
            &format!("{path}/prices"),
            Some(json!({"name": "x", "slug": "sneaky", "interval": "MONTHLY", "amountCents": 1, "currency": "USD"})),
        )
        .await;
    assert_eq!(add.status, StatusCode::NOT_FOUND);
    let price_path = format!("/api/prices/{their_price}");
    assert_eq!(c.call(Method::PATCH, &price_path, Some(json!({"amountCents": 0}))).await.status, StatusCode::NOT_FOUND);
    assert_eq!(c.call(Method::DELETE, &price_path, None).await.status, StatusCode::NOT_FOUND);

    let listed = c.call(Method::GET, "/api/products", None).await.json();
    let slugs: Vec<&str> =
        listed["items"].as_array().expect("items").iter().map(|p| p["slug"].as_str().expect("slug")).collect();
    assert_eq!(slugs, ["mine"]);

    let public_a = c.public("acme").await.json();
    let public_slugs: Vec<&str> =
        public_a["products"].as_array().expect("products").iter().map(|p| p["slug"].as_str().expect("slug")).collect();
    assert_eq!(public_slugs, ["mine"]);
    // Nothing of B's changed.
    let unchanged = c.app.authed(Method::GET, &path, &b_token, None).await.json();
    assert_eq!(unchanged["name"], "Theirs");
    assert_eq!(unchanged["isActive"], true);
}

#[tokio::test]
async fn public_listing_filters_and_orders() {
    let c = Catalog::new().await;
    // Business: two active prices (one popular), one inactive.
    let business = c.product("business", "SHARED_HOSTING").await;
    c.price(&business, "business-yearly", 24_990, false).await;
    c.price(&business, "business-monthly", 2_499, false).await;
    c.price(&business, "business-pro", 4_999, true).await;
    let retired = c.price(&business, "business-retired", 1, false).await;
    c.call(Method::DELETE, &format!("/api/prices/{retired}"), None).await;
    // Starter: cheapest, so listed first.
    let starter = c.product("starter", "SHARED_HOSTING").await;
    c.price(&starter, "starter-monthly", 999, false).await;
    // No active price: hidden.
    let lonely = c.product("lonely", "DNS").await;
    let only = c.price(&lonely, "lonely-monthly", 100, false).await;
    c.call(Method::PATCH, &format!("/api/prices/{only}"), Some(json!({"isActive": false}))).await;
    c.product("priceless", "ADDON").await;
    // Inactive product: hidden even with prices.
    let old = c.product("old", "VPS").await;
    c.price(&old, "old-monthly", 50, false).await;
    c.call(Method::DELETE, &format!("/api/products/{old}"), None).await;

    let response = c.public("acme").await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.header("cache-control"), Some("public, max-age=60"));
    let etag = response.header("etag").expect("etag").to_string();
    let listing = response.json();
    assert_eq!(listing["tenant"]["slug"], "acme");
    let products = listing["products"].as_array().expect("products");
    let slugs: Vec<&str> = products.iter().map(|p| p["slug"].as_str().expect("slug")).collect();
    assert_eq!(slugs, ["starter", "business"]);
    let business_prices: Vec<&str> =
        products[1]["prices"].as_array().expect("prices").iter().map(|p| p["slug"].as_str().expect("slug")).collect();
    assert_eq!(business_prices, ["business-pro", "business-monthly", "business-yearly"]);
    // No internal ids anywhere.
    let text = response.body.iter().map(|b| *b as char).collect::<String>();
    for internal in ["\"id\"", "productId", "tenantId", "providerPriceId", "isActive", &c.tenant.to_string()] {
        assert!(!text.contains(internal), "{internal} leaked: {text}");
    }

    let not_modified = c
        .app
        .request(request(Method::GET, "/api/public/products?tenant=acme", &[("if-none-match", etag.as_str())], None))
        .await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
    assert!(not_modified.body.is_empty());
    // A change gives a new ETag.
    c.price(&starter, "starter-yearly", 9_990, false).await;
    let changed = c
        .app
        .request(request(Method::GET, "/api/public/products?tenant=acme", &[("if-none-match", etag.as_str())], None))
        .await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_ne!(changed.header("etag"), Some(etag.as_str()));

    assert_eq!(c.public("nobody").await.status, StatusCode::NOT_FOUND);
    assert_eq!(c.app.get("/api/public/products").await.status, StatusCode::UNPROCESSABLE_ENTITY);
    c.app
        .db()
        .await
        .execute("UPDATE tenants SET status = 'DISABLED' WHERE id = $1", &[&c.tenant])
        .await
        .expect("disable");
    assert_eq!(c.public("acme").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn product_list_paginates_and_filters() {
    let c = Catalog::new().await;
    for i in 0..5 {
        c.product(&format!("p{i}"), if i % 2 == 0 { "DNS" } else { "VPS" }).await;
    }
    let first = c.call(Method::GET, "/api/products?limit=2", None).await.json();
    let mut seen: Vec<String> = first["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| p["slug"].as_str().expect("slug").to_string())
        .collect();
    let mut cursor = first["nextCursor"].as_str().map(str::to_string);
    while let Some(next) = cursor {
        let page = c.call(Method::GET, &format!("/api/products?limit=2&cursor={next}"), None).await.json();
        seen.extend(
            page["items"].as_array().expect("items").iter().map(|p| p["slug"].as_str().expect("slug").to_string()),
        );
        cursor = page["nextCursor"].as_str().map(str::to_string);
    }
    assert_eq!(seen, ["p4", "p3", "p2", "p1", "p0"], "newest first, each once");
    let dns = c.call(Method::GET, "/api/products?type=DNS", None).await.json();
    assert_eq!(dns["items"].as_array().expect("items").len(), 3);
    assert_eq!(fields(&c.call(Method::GET, "/api/products?type=dns", None).await), ["type"]);
    assert_eq!(fields(&c.call(Method::GET, "/api/products?active=maybe", None).await), ["active"]);
}
