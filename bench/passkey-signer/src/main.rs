//! A software authenticator for `scripts/bench`: it registers passkeys and signs login
//! ceremonies, as a browser and a device would, so that `finishPasskeyLogin` can be
//! driven at thousands of requests a second (wrk's Lua cannot sign).
//!
//! One process lives for a whole benchmark and keeps its keys in memory (a passkey's
//! private key never leaves it). It reads commands on stdin, one a line, and answers
//! each with one line on stdout:
//!
//! - `create <options>`: `<options>` is what `beginPasskeyRegistration` returned; makes
//!   a new discoverable credential (no signature counter: it stays 0, as many platform
//!   authenticators keep it, so concurrent logins with one key all verify) and answers
//!   the `PublicKeyCredential.toJSON()` for `finishPasskeyRegistration`.
//! - `template <options>`: the options of one `beginPasskeyLogin`; only their challenge
//!   differs from one ceremony to the next. Answers `ok`.
//! - `sign <key> <ceremonyId> <challenge>`: key number `<key>` (in creation order)
//!   signs the template with that challenge; answers the variables of one
//!   `finishPasskeyLogin(input: $i)`: `{"i":{"ceremonyId":…,"credential":…}}`.
//!
//! The origin is the service's default `WEBAUTHN_ORIGINS`, `http://localhost:3000`.
//! A failure answers `error: …` and the process goes on.

use std::io::{BufRead, BufWriter, Write};

use anyhow::{Context, anyhow};
use passkey_authenticator::{Authenticator, MockUserValidationMethod, UserCheck};
use passkey_client::{Client, DefaultClientData};
use passkey_crypto::AvailableBackend;
use passkey_types::{Passkey, ctap2::Aaguid, webauthn};
use serde_json::{Value, json};
use url::Url;

const ORIGIN: &str = "http://localhost:3000";

/// A user who verifies every time they are asked (login needs user verification).
fn verified_user() -> MockUserValidationMethod {
    let mut user = MockUserValidationMethod::new();
    user.expect_is_presence_enabled().returning(|| true);
    user.expect_is_verification_enabled()
        .returning(|| Some(true));
    user.expect_check_user().returning(|_, _, _| {
        Ok(UserCheck {
            presence: true,
            verification: true,
        })
    });
    user
}

type SoftAuthenticator = Authenticator<Option<Passkey>, MockUserValidationMethod, AvailableBackend>;

fn authenticator(store: Option<Passkey>) -> SoftAuthenticator {
    let mut authenticator = Authenticator::new(
        Aaguid::new_empty(),
        store,
        verified_user(),
        AvailableBackend,
    );
    authenticator.set_make_credentials_with_signature_counter(false);
    authenticator
}

struct Signer {
    origin: Url,
    keys: Vec<Passkey>,
    template: Option<Value>,
}

impl Signer {
    /// `navigator.credentials.create(…)` then `.toJSON()`; keeps the new key.
    fn create(&mut self, options: &str) -> anyhow::Result<String> {
        let request: webauthn::CredentialCreationOptions =
            serde_json::from_str(options).context("creation options")?;
        let mut client = Client::new(authenticator(None)).allows_insecure_localhost(true);
        let created =
            futures::executor::block_on(client.register(&self.origin, request, DefaultClientData))
                .map_err(|e| anyhow!("the authenticator refused to create: {e:?}"))?;
        let key = client
            .authenticator()
            .store()
            .clone()
            .context("no credential stored")?;
        self.keys.push(key);
        Ok(serde_json::to_string(&created)?)
    }

    /// Keeps a login ceremony's options, with an empty allow list dropped (to a
    /// browser an empty list is no list: any discoverable credential).
    fn template(&mut self, options: &str) -> anyhow::Result<String> {
        let mut options: Value = serde_json::from_str(options).context("request options")?;
        if let Some(request) = options["publicKey"].as_object_mut()
            && request
                .get("allowCredentials")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty)
        {
            request.remove("allowCredentials");
        }
        self.template = Some(options);
        Ok("ok".to_owned())
    }

    /// `navigator.credentials.get(…)` with key `key` over `challenge`, then `.toJSON()`.
    fn sign(&self, key: &str, ceremony_id: &str, challenge: &str) -> anyhow::Result<String> {
        let mut options = self.template.clone().context("no template yet")?;
        options["publicKey"]["challenge"] = Value::String(challenge.to_owned());
        let request: webauthn::CredentialRequestOptions =
            serde_json::from_value(options).context("request options")?;
        let index: usize = key.parse().context("key number")?;
        let passkey = self.keys.get(index).context("no such key")?.clone();
        let mut client = Client::new(authenticator(Some(passkey))).allows_insecure_localhost(true);
        let asserted = futures::executor::block_on(client.authenticate(
            &self.origin,
            request,
            DefaultClientData,
        ))
        .map_err(|e| anyhow!("the authenticator refused to sign: {e:?}"))?;
        let input = json!({ "i": { "ceremonyId": ceremony_id, "credential": asserted } });
        Ok(serde_json::to_string(&input)?)
    }

    fn answer(&mut self, line: &str) -> anyhow::Result<String> {
        let (command, rest) = line.split_once(' ').unwrap_or((line, ""));
        match command {
            "create" => self.create(rest),
            "template" => self.template(rest),
            "sign" => match rest.split(' ').collect::<Vec<_>>()[..] {
                [key, ceremony_id, challenge] => self.sign(key, ceremony_id, challenge),
                _ => Err(anyhow!("sign <key> <ceremonyId> <challenge>")),
            },
            _ => Err(anyhow!("unknown command {command:?}")),
        }
    }
}

fn main() -> anyhow::Result<()> {
    let mut signer = Signer {
        origin: Url::parse(ORIGIN)?,
        keys: Vec::new(),
        template: None,
    };
    let stdin = std::io::stdin();
    let mut out = BufWriter::new(std::io::stdout().lock());
    for line in stdin.lock().lines() {
        let line = line?;
        let answer = signer
            .answer(line.trim_end())
            .unwrap_or_else(|e| format!("error: {e:#}"));
        writeln!(out, "{answer}")?;
        out.flush()?;
    }
    out.flush()?;
    Ok(())
}
