//! Social login against a real OpenID provider on loopback (npm oauth2-mock-server,
//! `tests/oidc/provider.mjs`) and a GitHub stub: the redirect flow with its binding
//! cookie, PKCE and id_token checks, the one-time login code, the linking rules, and the
//! account's identities. The test plays the browser: it follows each redirect itself,
//! keeping the cookies a browser would.

use std::collections::HashMap;

use identity::clock::Clock;
use serde_json::{Value, json};
use totp_rs::Totp;

use crate::support::*;

const APP_CALLBACK: &str = "http://localhost:3000/auth/callback";
/// `PUBLIC_URL`'s default: the base of the URLs the service hands out.
const PUBLIC: &str = "http://localhost:8000";

const START: &str = "mutation($i: StartSocialLoginInput!) { startSocialLogin(input: $i) { authorizationUrl expiresAt } }";
const START_LINK: &str = "mutation($i: StartSocialLoginInput!) { startIdentityLink(input: $i) { authorizationUrl expiresAt } }";
const COMPLETE: &str = "mutation($c: String!, $v: String!) { completeSocialLogin(code: $c, codeVerifier: $v) { __typename ... on AuthPayload { accessToken refreshToken user { id email emailVerified hasPassword } } ... on AccountLinkRequired { linkToken provider email expiresAt } } }";
const LINK: &str = "mutation($t: String!) { linkPendingIdentity(linkToken: $t) { id provider email createdAt lastUsedAt } }";
const UNLINK: &str = "mutation($id: ID!) { unlinkIdentity(id: $id) }";
const MINE: &str = "{ myIdentities { id provider email createdAt lastUsedAt } }";
const PROVIDERS: &str = "{ socialProviders { id name } }";
const ME: &str = "{ me { id email emailVerified hasPassword } }";

/// A service with the OpenID provider `idp` (trusted for email) and GitHub `gh`.
struct Social {
    app: TestApp,
    idp: OidcProvider,
    github: GithubStub,
    /// A client that follows no redirect, as the test follows them itself.
    browser: reqwest::Client,
}

async fn social_with(overrides: &[(&str, &str)]) -> Social {
    let idp = OidcProvider::start().await;
    let github = GithubStub::start().await;
    let gh_auth = format!("{}/login/oauth/authorize", github.url);
    let gh_token = format!("{}/login/oauth/access_token", github.url);
    let gh_api = format!("{}/api", github.url);
    let mut vars: Vec<(&str, &str)> = vec![
        ("SOCIAL_PROVIDERS", "idp,gh"),
        ("SOCIAL_REDIRECT_URLS", APP_CALLBACK),
        ("SOCIAL_ALLOW_INSECURE_HTTP", "true"),
        ("SOCIAL_IDP_KIND", "oidc"),
        ("SOCIAL_IDP_NAME", "Test IdP"),
        ("SOCIAL_IDP_ISSUER", &idp.issuer),
        ("SOCIAL_IDP_CLIENT_ID", "identity-test"),
        ("SOCIAL_IDP_CLIENT_SECRET", "idp-secret"),
        ("SOCIAL_IDP_TRUST_EMAIL", "true"),
        ("SOCIAL_GH_KIND", "github"),
        ("SOCIAL_GH_NAME", "GitHub"),
        ("SOCIAL_GH_CLIENT_ID", "gh-client"),
        ("SOCIAL_GH_CLIENT_SECRET", "gh-secret"),
        ("SOCIAL_GH_TRUST_EMAIL", "true"),
        ("SOCIAL_GH_AUTH_URL", &gh_auth),
        ("SOCIAL_GH_TOKEN_URL", &gh_token),
        ("SOCIAL_GH_API_URL", &gh_api),
    ];
    vars.extend_from_slice(overrides);
    let app = spawn_app_with(&vars).await;
    Social {
        app,
        idp,
        github,
        browser: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    }
}

async fn social() -> Social {
    social_with(&[]).await
}

/// A PKCE pair: (verifier, S256 challenge).
fn pkce() -> (String, String) {
    use base64::Engine;
    use sha2::Digest;
    let verifier = format!("v-{}-{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// The browser at the provider's callback: the URL and the cookie it would send.
struct AtCallback {
    url: String,
    cookie: String,
    verifier: String,
}

/// What the service's last redirect put in `redirectTo`'s fragment.
fn fragment(location: &str) -> HashMap<String, String> {
    let (base, fragment) = location.split_once('#').expect("a fragment");
    assert_eq!(base, APP_CALLBACK, "back to the app's exact URL");
    url::form_urlencoded::parse(fragment.as_bytes())
        .into_owned()
        .collect()
}

impl Social {
    /// The service's URL for one it handed out under `PUBLIC_URL`.
    fn local(&self, url: &str) -> String {
        url.replacen(PUBLIC, &self.app.url, 1)
    }

    async fn start(&self, provider: &str, access: Option<&str>) -> (Value, String) {
        let (verifier, challenge) = pkce();
        let input = json!({ "i": { "provider": provider, "redirectTo": APP_CALLBACK, "codeChallenge": challenge } });
        let body = match access {
            None => self.app.graphql(START, input).await,
            Some(access) => self.app.graphql_as(START_LINK, input, Some(access)).await,
        };
        (body, verifier)
    }

    /// From `startSocialLogin` (or `startIdentityLink` with `access`) to the provider's
    /// redirect back: the browser stands at the callback.
    async fn to_callback(&self, provider: &str, access: Option<&str>) -> AtCallback {
        let (body, verifier) = self.start(provider, access).await;
        let field = if access.is_some() {
            "startIdentityLink"
        } else {
            "startSocialLogin"
        };
        let url = data(&body, field)["authorizationUrl"].as_str().unwrap();
        assert!(
            url.starts_with(&format!("{PUBLIC}/oauth/start?flow=")),
            "{url}"
        );
        let start = self.browser.get(self.local(url)).send().await.unwrap();
        assert_eq!(start.status(), 303);
        let set_cookie = start.headers()["set-cookie"].to_str().unwrap().to_owned();
        let cookie = set_cookie.split(';').next().unwrap().to_owned();
        let authorize = start.headers()["location"].to_str().unwrap().to_owned();
        let query: HashMap<String, String> = url::Url::parse(&authorize)
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect();
        assert_eq!(query["code_challenge_method"], "S256");
        assert_eq!(
            query["redirect_uri"],
            format!("{PUBLIC}/oauth/callback/{provider}")
        );
        let at_provider = self.browser.get(&authorize).send().await.unwrap();
        assert!(
            at_provider.status().is_redirection(),
            "{}",
            at_provider.status()
        );
        let back = at_provider.headers()["location"].to_str().unwrap();
        AtCallback {
            url: self.local(back),
            cookie,
            verifier,
        }
    }

    /// The callback with `cookie` (or none): the fragment the app receives.
    async fn callback(&self, url: &str, cookie: Option<&str>) -> HashMap<String, String> {
        let mut request = self.browser.get(url);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), 303, "{url}");
        assert_eq!(answer.headers()["cache-control"], "no-store");
        fragment(answer.headers()["location"].to_str().unwrap())
    }

    /// A whole trip through the provider as `claims`: the app's fragment and verifier.
    async fn trip(
        &self,
        provider: &str,
        access: Option<&str>,
    ) -> (HashMap<String, String>, String) {
        let at = self.to_callback(provider, access).await;
        let answer = self.callback(&at.url, Some(&at.cookie)).await;
        (answer, at.verifier)
    }

    async fn complete(&self, code: &str, verifier: &str) -> Value {
        self.app
            .graphql(COMPLETE, json!({ "c": code, "v": verifier }))
            .await
    }

    /// Signs in with the OpenID provider as `claims`; the `completeSocialLogin` answer.
    async fn login_as(&mut self, claims: Value) -> Value {
        self.idp.next(claims, json!({})).await;
        let (answer, verifier) = self.trip("idp", None).await;
        let code = answer
            .get("code")
            .unwrap_or_else(|| panic!("a code: {answer:?}"));
        self.complete(code, &verifier).await
    }

    /// The trip's answer when the provider's id_token is spoiled by `tamper`.
    async fn refused_with(&mut self, claims: Value, tamper: Value) -> HashMap<String, String> {
        self.idp.next(claims, tamper).await;
        self.trip("idp", None).await.0
    }
}

fn claims(sub: &str, email: &str, verified: bool) -> Value {
    json!({ "sub": sub, "email": email, "email_verified": verified, "name": "Ada Lovelace" })
}

fn signed(body: &Value) -> &Value {
    let result = data(body, "completeSocialLogin");
    assert_eq!(result["__typename"], "AuthPayload", "{body}");
    result
}

fn sub() -> String {
    format!("sub-{}", uuid::Uuid::new_v4())
}

async fn verify_email(app: &TestApp, email: &str) {
    let mail = app.mail.wait_for_verifications(email, 1).await;
    let token = mail.last().unwrap().verify_token();
    let body = app
        .graphql(
            "mutation($t: String!) { verifyEmail(token: $t) }",
            json!({ "t": token }),
        )
        .await;
    assert_eq!(data(&body, "verifyEmail"), true);
}

async fn users_with(app: &TestApp, email: &str) -> usize {
    app.sql_string(&format!("SELECT id FROM users WHERE email = '{email}'"))
        .await
        .len()
}

#[tokio::test]
async fn a_first_login_makes_an_account_without_a_password() {
    let mut s = social().await;
    let providers = s.app.graphql(PROVIDERS, json!({})).await;
    assert_eq!(
        data(&providers, "socialProviders"),
        &json!([{ "id": "idp", "name": "Test IdP" }, { "id": "gh", "name": "GitHub" }])
    );
    let email = unique_email();
    let body = s.login_as(claims(&sub(), &email, true)).await;
    let payload = signed(&body);
    assert_eq!(payload["user"]["email"], email.as_str());
    assert_eq!(
        payload["user"]["emailVerified"], true,
        "a trusted provider verified it"
    );
    assert_eq!(payload["user"]["hasPassword"], false);
    let session = Session::from_payload(payload);
    let token = claims_of(&session.access);
    assert_eq!(token["amr"], json!(["fed"]));
    assert_eq!(token["acr"], "aal1");
    let me = s.app.graphql_as(ME, json!({}), Some(&session.access)).await;
    assert_eq!(data(&me, "me")["id"], session.user_id.as_str());
    // The refresh token works like any other.
    let refreshed = s.app.refresh(&session.refresh).await;
    assert!(data(&refreshed, "refreshToken")["accessToken"].is_string());
    // No password signs in to it.
    assert_code(&s.app.login(&email, PASSWORD).await, "INVALID_CREDENTIALS");

    let mine = s
        .app
        .graphql_as(MINE, json!({}), Some(&session.access))
        .await;
    let mine = data(&mine, "myIdentities").as_array().unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["provider"], "idp");
    assert_eq!(mine[0]["email"], email.as_str());

    // The export lists the identity: provider, address and dates, never the subject.
    let export = s
        .app
        .graphql_as("{ myData }", json!({}), Some(&session.access))
        .await;
    let export = data(&export, "myData");
    let identities = export["identities"].as_array().unwrap();
    assert_eq!(identities.len(), 1, "{export}");
    assert_eq!(identities[0]["provider"], "idp");
    assert_eq!(identities[0]["email"], email.as_str());
    assert!(!export.to_string().contains("sub-"), "no subject: {export}");

    s.app.settle().await;
    let events: Vec<String> = s
        .app
        .audit_events()
        .await
        .into_iter()
        .map(|e| e.0)
        .collect();
    for event in [
        "social_login_started",
        "social_account_created",
        "social_login_succeeded",
    ] {
        assert!(events.iter().any(|e| e == event), "{event} in {events:?}");
    }
    let metrics = s.app.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            "identity_social_logins_total{provider=\"idp\",result=\"succeeded\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn the_subject_finds_the_account_even_when_the_address_changed() {
    let mut s = social().await;
    let subject = sub();
    let first = s.login_as(claims(&subject, &unique_email(), true)).await;
    let user_id = signed(&first)["user"]["id"].clone();
    let new_address = unique_email();
    let second = s.login_as(claims(&subject, &new_address, true)).await;
    assert_eq!(signed(&second)["user"]["id"], user_id, "same account");
    // The identity records what the provider says now; the account keeps its address.
    let access = signed(&second)["accessToken"].as_str().unwrap();
    let mine = s.app.graphql_as(MINE, json!({}), Some(access)).await;
    assert_eq!(
        data(&mine, "myIdentities")[0]["email"],
        new_address.as_str()
    );
    assert_eq!(users_with(&s.app, &new_address).await, 0);
}

#[tokio::test]
async fn a_spoiled_id_token_fails_the_login() {
    let mut s = social().await;
    for (what, tamper) in [
        ("wrong nonce", json!({ "nonce": "another-flow" })),
        ("wrong audience", json!({ "aud": "another-client" })),
        ("expired", json!({ "expired": true })),
    ] {
        let email = unique_email();
        let answer = s.refused_with(claims(&sub(), &email, true), tamper).await;
        assert_eq!(
            answer.get("error").map(String::as_str),
            Some("SOCIAL_LOGIN_FAILED"),
            "{what}: {answer:?}"
        );
        assert!(!answer.contains_key("code"), "{what}");
        assert_eq!(users_with(&s.app, &email).await, 0, "{what}: no account");
    }
    let metrics = s.app.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            "identity_social_logins_total{provider=\"idp\",result=\"id_token\"}"
        ),
        3.0
    );
}

#[tokio::test]
async fn the_callback_needs_its_own_browser_and_a_fresh_provider_code() {
    let mut s = social().await;
    s.idp
        .next(claims(&sub(), &unique_email(), true), json!({}))
        .await;

    // No binding cookie: the callback URL replayed in another browser.
    let at = s.to_callback("idp", None).await;
    let answer = s.callback(&at.url, None).await;
    assert_eq!(answer["error"], "SOCIAL_LOGIN_FAILED");
    // The flow is spent: the right browser coming late finds nothing.
    let late = s
        .browser
        .get(&at.url)
        .header("cookie", &at.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), 400);

    // The binding cookie of another flow.
    let a = s.to_callback("idp", None).await;
    let b = s.to_callback("idp", None).await;
    let answer = s.callback(&b.url, Some(&a.cookie)).await;
    assert_eq!(answer["error"], "SOCIAL_LOGIN_FAILED");
    // Flow a is untouched by that, and finishes.
    let answer = s.callback(&a.url, Some(&a.cookie)).await;
    assert!(answer.contains_key("code"), "{answer:?}");

    // A provider code used once already, presented with a new flow's state and cookie.
    let c = s.to_callback("idp", None).await;
    let used_code = url::Url::parse(&a.url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let mut replay = url::Url::parse(&c.url).unwrap();
    let state = replay
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    replay
        .query_pairs_mut()
        .clear()
        .append_pair("code", &used_code)
        .append_pair("state", &state);
    let answer = s.callback(replay.as_str(), Some(&c.cookie)).await;
    assert_eq!(answer["error"], "SOCIAL_LOGIN_FAILED");

    // The provider says the user refused.
    let d = s.to_callback("idp", None).await;
    let mut denied = url::Url::parse(&d.url).unwrap();
    let state = denied
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    denied
        .query_pairs_mut()
        .clear()
        .append_pair("error", "access_denied")
        .append_pair("state", &state);
    let answer = s.callback(denied.as_str(), Some(&d.cookie)).await;
    assert_eq!(answer["error"], "ACCESS_DENIED");

    // The start link works once.
    let (body, _) = s.start("idp", None).await;
    let url = s.local(
        data(&body, "startSocialLogin")["authorizationUrl"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(s.browser.get(&url).send().await.unwrap().status(), 303);
    assert_eq!(s.browser.get(&url).send().await.unwrap().status(), 400);
}

#[tokio::test]
async fn the_start_refuses_an_unknown_provider_or_return_url() {
    let s = social().await;
    let (_, challenge) = pkce();
    for (input, field) in [
        (
            json!({ "provider": "idp", "redirectTo": "https://evil.example/cb", "codeChallenge": challenge }),
            "redirectTo",
        ),
        (
            json!({ "provider": "idp", "redirectTo": format!("{APP_CALLBACK}/x"), "codeChallenge": challenge }),
            "redirectTo",
        ),
        (
            json!({ "provider": "nope", "redirectTo": APP_CALLBACK, "codeChallenge": challenge }),
            "provider",
        ),
        (
            json!({ "provider": "idp", "redirectTo": APP_CALLBACK, "codeChallenge": "plain" }),
            "codeChallenge",
        ),
    ] {
        let body = s.app.graphql(START, json!({ "i": input })).await;
        assert_code(&body, "BAD_USER_INPUT");
        assert!(fields(&body).contains_key(field), "{field}: {body}");
    }
}

#[tokio::test]
async fn a_login_code_works_once_and_only_with_its_verifier() {
    let mut s = social().await;
    s.idp
        .next(claims(&sub(), &unique_email(), true), json!({}))
        .await;
    let (answer, verifier) = s.trip("idp", None).await;
    let code = &answer["code"];
    assert!(code.len() >= 43, "{code}");
    // The wrong verifier spends the code: a thief with the code gets nothing, and so
    // does the app after it.
    let (other, _) = pkce();
    assert_code(&s.complete(code, &other).await, "INVALID_TOKEN");
    assert_code(&s.complete(code, &verifier).await, "INVALID_TOKEN");

    let (answer, verifier) = s.trip("idp", None).await;
    signed(&s.complete(&answer["code"], &verifier).await);
    assert_code(
        &s.complete(&answer["code"], &verifier).await,
        "INVALID_TOKEN",
    );

    // 60 seconds.
    let (answer, verifier) = s.trip("idp", None).await;
    s.app.advance(61);
    assert_code(
        &s.complete(&answer["code"], &verifier).await,
        "INVALID_TOKEN",
    );
}

#[tokio::test]
async fn a_verified_account_is_linked_only_by_its_signed_in_owner() {
    let mut s = social().await;
    let email = unique_email();
    let owner = s.app.signed_up(&email).await;
    verify_email(&s.app, &email).await;
    let subject = sub();
    let body = s.login_as(claims(&subject, &email, true)).await;
    let result = data(&body, "completeSocialLogin");
    assert_eq!(
        result["__typename"], "AccountLinkRequired",
        "never silent: {body}"
    );
    assert_eq!(result["provider"], "idp");
    assert_eq!(result["email"], email.as_str());
    let link_token = result["linkToken"].as_str().unwrap().to_owned();
    // Nothing was linked: the provider alone still does not sign in.
    let again = s.login_as(claims(&subject, &email, true)).await;
    assert_eq!(
        data(&again, "completeSocialLogin")["__typename"],
        "AccountLinkRequired"
    );

    // Not signed in; signed in as someone else.
    let link = json!({ "t": link_token });
    assert_code(&s.app.graphql(LINK, link.clone()).await, "UNAUTHENTICATED");
    let stranger = s.app.signed_up(&unique_email()).await;
    assert_code(
        &s.app
            .graphql_as(LINK, link.clone(), Some(&stranger.access))
            .await,
        "INVALID_TOKEN",
    );
    // The owner.
    let linked = s
        .app
        .graphql_as(LINK, link.clone(), Some(&owner.access))
        .await;
    assert_eq!(data(&linked, "linkPendingIdentity")["provider"], "idp");
    assert_code(
        &s.app.graphql_as(LINK, link, Some(&owner.access)).await,
        "INVALID_TOKEN",
    );
    // (Verification mails are counted apart.)
    let mails = s.app.mail.wait_for(&email, 1).await;
    assert!(
        mails
            .iter()
            .any(|m| m.subject().contains("Test IdP was connected")),
        "{:?}",
        mails.iter().map(|m| m.subject()).collect::<Vec<_>>()
    );
    // Now the provider signs in to that account, and its password still works.
    let body = s.login_as(claims(&subject, &email, true)).await;
    assert_eq!(signed(&body)["user"]["id"], owner.user_id.as_str());
    assert_eq!(signed(&body)["user"]["hasPassword"], true);
    assert!(data(&s.app.login(&email, PASSWORD).await, "login")["accessToken"].is_string());
}

#[tokio::test]
async fn an_unverified_account_is_claimed_by_a_trusted_verified_address() {
    let mut s = social().await;
    let email = unique_email();
    // Someone registered the address without ever proving it (a pre-hijack).
    let squatter = s.app.signed_up(&email).await;
    let reset_token = s.app.reset_token_for(&email).await;

    let body = s.login_as(claims(&sub(), &email, true)).await;
    let payload = signed(&body);
    assert_eq!(
        payload["user"]["id"],
        squatter.user_id.as_str(),
        "the same account"
    );
    assert_eq!(payload["user"]["emailVerified"], true);
    assert_eq!(payload["user"]["hasPassword"], false);
    // The squatter's password, sessions and reset link are gone.
    assert_code(&s.app.login(&email, PASSWORD).await, "INVALID_CREDENTIALS");
    assert_code(&s.app.me(Some(&squatter.access)).await, "UNAUTHENTICATED");
    assert!(s.app.refresh(&squatter.refresh).await["errors"].is_array());
    let used = s
        .app
        .reset_password(
            &reset_token,
            "another long passphrase 9",
            "another long passphrase 9",
        )
        .await;
    assert_code(&used, "INVALID_TOKEN");
    s.app.settle().await;
    let events: Vec<String> = s
        .app
        .audit_events()
        .await
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert!(
        events.iter().any(|e| e == "unverified_account_claimed"),
        "{events:?}"
    );
}

#[tokio::test]
async fn an_untrusted_or_unverified_provider_address_never_links() {
    let mut s = social_with(&[("SOCIAL_IDP_TRUST_EMAIL", "false")]).await;
    // Unverified at the provider: no account made, none linked.
    let email = unique_email();
    let answer = s
        .refused_with(claims(&sub(), &email, false), json!({}))
        .await;
    assert_eq!(answer["error"], "PROVIDER_EMAIL_NOT_VERIFIED");
    assert_eq!(users_with(&s.app, &email).await, 0);

    // Verified but the provider is not trusted for email: an unverified account here
    // is not claimed.
    let email = unique_email();
    let squatter = s.app.signed_up(&email).await;
    let answer = s
        .refused_with(claims(&sub(), &email, true), json!({}))
        .await;
    assert_eq!(answer["error"], "PROVIDER_EMAIL_NOT_VERIFIED");
    assert!(data(&s.app.me(Some(&squatter.access)).await, "me").is_object());

    // A new address from it makes an account whose address is still to verify.
    let email = unique_email();
    let body = s.login_as(claims(&sub(), &email, true)).await;
    assert_eq!(signed(&body)["user"]["emailVerified"], false);
    s.app.mail.wait_for_verifications(&email, 1).await;
}

#[tokio::test]
async fn a_totp_account_needs_its_second_factor() {
    let mut s = social().await;
    s.app.freeze_clock();
    let subject = sub();
    let body = s.login_as(claims(&subject, &unique_email(), true)).await;
    let access = signed(&body)["accessToken"].as_str().unwrap().to_owned();
    let started = s
        .app
        .graphql_as(
            "mutation { beginTotpEnrollment { enrollmentId otpauthUri } }",
            json!({}),
            Some(&access),
        )
        .await;
    let started = data(&started, "beginTotpEnrollment");
    let totp = Totp::from_url(started["otpauthUri"].as_str().unwrap()).unwrap();
    let clock = s.app.clock.clone();
    let now = move || u64::try_from(clock.now().timestamp()).unwrap();
    let confirmed = s
        .app
        .graphql_as(
            "mutation($id: ID!, $c: String!) { confirmTotpEnrollment(enrollmentId: $id, code: $c) { recoveryCodes } }",
            json!({ "id": started["enrollmentId"], "c": totp.generate(now()).to_string() }),
            Some(&access),
        )
        .await;
    assert!(data(&confirmed, "confirmTotpEnrollment").is_object());

    s.app.advance(30);
    let body = s.login_as(claims(&subject, &unique_email(), true)).await;
    assert_code(&body, "MFA_REQUIRED");
    assert!(
        body["data"].is_null(),
        "no tokens before the second factor: {body}"
    );
    let extensions = &body["errors"][0]["extensions"];
    assert_eq!(extensions["methods"], json!(["TOTP", "RECOVERY_CODE"]));
    let verified = s
        .app
        .graphql(
            "mutation($i: VerifyMfaInput!) { verifyMfa(input: $i) { accessToken } }",
            json!({ "i": { "mfaToken": extensions["mfaToken"], "totpCode": totp.generate(now()).to_string() } }),
        )
        .await;
    let token = claims_of(
        data(&verified, "verifyMfa")["accessToken"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(token["amr"], json!(["fed", "otp", "mfa"]));
    assert_eq!(token["acr"], "aal2");
}

#[tokio::test]
async fn the_last_way_to_sign_in_cannot_be_unlinked() {
    let mut s = social().await;
    let email = unique_email();
    let body = s.login_as(claims(&sub(), &email, true)).await;
    let access = signed(&body)["accessToken"].as_str().unwrap().to_owned();
    let mine = s.app.graphql_as(MINE, json!({}), Some(&access)).await;
    let id = data(&mine, "myIdentities")[0]["id"].clone();
    let refused = s
        .app
        .graphql_as(UNLINK, json!({ "id": id }), Some(&access))
        .await;
    assert_code(&refused, "CONFLICT");
    assert_eq!(
        refused["errors"][0]["extensions"]["reason"],
        "LAST_LOGIN_METHOD"
    );

    // A password set through a reset gives it another way in: now it may go.
    let token = s.app.reset_token_for(&email).await;
    let reset = s
        .app
        .reset_password(&token, "a long new passphrase 7", "a long new passphrase 7")
        .await;
    assert!(reset["errors"].is_null(), "{reset}");
    let session = Session::from_payload(data(
        &s.app.login(&email, "a long new passphrase 7").await,
        "login",
    ));
    let me = s.app.graphql_as(ME, json!({}), Some(&session.access)).await;
    assert_eq!(data(&me, "me")["hasPassword"], true);
    let unlinked = s
        .app
        .graphql_as(UNLINK, json!({ "id": id }), Some(&session.access))
        .await;
    assert_eq!(data(&unlinked, "unlinkIdentity"), true);
    let mine = s
        .app
        .graphql_as(MINE, json!({}), Some(&session.access))
        .await;
    assert_eq!(data(&mine, "myIdentities"), &json!([]));
    // The reset link, the notice of the new password, and the notice of the unlink.
    let mails = s.app.mail.wait_for(&email, 3).await;
    assert!(
        mails
            .iter()
            .any(|m| m.subject().contains("Test IdP was disconnected"))
    );
}

#[tokio::test]
async fn a_signed_in_user_connects_a_provider_from_settings() {
    let mut s = social().await;
    let email = unique_email();
    let owner = s.app.signed_up(&email).await;
    let subject = sub();
    // The provider's address may differ from the account's: the user proved both.
    s.idp
        .next(claims(&subject, &unique_email(), false), json!({}))
        .await;
    let (answer, verifier) = s.trip("idp", Some(&owner.access)).await;
    let body = s.complete(&answer["code"], &verifier).await;
    let result = data(&body, "completeSocialLogin");
    assert_eq!(result["__typename"], "AccountLinkRequired");
    assert_eq!(result["email"], email.as_str(), "the account it links to");
    let linked = s
        .app
        .graphql_as(
            LINK,
            json!({ "t": result["linkToken"] }),
            Some(&owner.access),
        )
        .await;
    assert_eq!(data(&linked, "linkPendingIdentity")["provider"], "idp");

    // The same identity for another account: already linked.
    let other = s.app.signed_up(&unique_email()).await;
    let (answer, verifier) = s.trip("idp", Some(&other.access)).await;
    let body = s.complete(&answer["code"], &verifier).await;
    let token = data(&body, "completeSocialLogin")["linkToken"].clone();
    let refused = s
        .app
        .graphql_as(LINK, json!({ "t": token }), Some(&other.access))
        .await;
    assert_code(&refused, "CONFLICT");
    assert_eq!(
        refused["errors"][0]["extensions"]["reason"],
        "IDENTITY_ALREADY_LINKED"
    );

    // Starting a link needs a session.
    assert_code(&s.app.graphql(START_LINK, json!({ "i": { "provider": "idp", "redirectTo": APP_CALLBACK, "codeChallenge": pkce().1 } })).await, "UNAUTHENTICATED");
}

#[tokio::test]
async fn github_gives_only_its_primary_verified_address() {
    let s = social().await;
    let email = unique_email();
    s.github.set_user(GithubUser {
        id: 4242,
        name: Some("Grace Hopper".into()),
        emails: vec![
            ("other@example.com".into(), false, true),
            (email.clone(), true, true),
        ],
    });
    let (answer, verifier) = s.trip("gh", None).await;
    let body = s.complete(&answer["code"], &verifier).await;
    assert_eq!(signed(&body)["user"]["email"], email.as_str());
    assert_eq!(signed(&body)["user"]["emailVerified"], true);

    // A primary address GitHub has not verified (another verified one does not count).
    let email = unique_email();
    s.github.set_user(GithubUser {
        id: 4343,
        name: None,
        emails: vec![(email.clone(), true, false), (unique_email(), false, true)],
    });
    let (answer, _) = s.trip("gh", None).await;
    assert_eq!(answer["error"], "PROVIDER_EMAIL_NOT_VERIFIED");
    assert_eq!(users_with(&s.app, &email).await, 0);
}

#[tokio::test]
async fn under_https_the_binding_cookie_is_host_only_and_secure() {
    let s = social_with(&[("PUBLIC_URL", "https://id.example")]).await;
    let (body, _) = s.start("idp", None).await;
    let url = data(&body, "startSocialLogin")["authorizationUrl"]
        .as_str()
        .unwrap();
    assert!(
        url.starts_with("https://id.example/oauth/start?flow="),
        "{url}"
    );
    let local = url.replacen("https://id.example", &s.app.url, 1);
    let start = s.browser.get(local).send().await.unwrap();
    assert_eq!(start.status(), 303);
    let cookie = start.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("__Host-social_"), "{cookie}");
    for attribute in [
        "Path=/",
        "Max-Age=600",
        "HttpOnly",
        "SameSite=Lax",
        "Secure",
    ] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
}
