//! Turning what an operator gives for a provider into the [`ProviderConfig`] that is stored,
//! with every check made before anything is stored. The CLI reads secrets from files and
//! names its own flags; this module says what is missing or wrong in the provider's terms.

use super::{
    HttpAuth, MAILGUN_MAX_AGE_SECS, MAX_SIGNED_AGE_SECS, Provider, ProviderConfig,
    SENDGRID_MAX_AGE_SECS,
};

/// The shortest shared secret accepted (a password, a bearer token, an OAuth client secret).
pub const MIN_SECRET_CHARS: usize = 32;

/// What an operator gave for a provider (secrets already read).
#[derive(Debug, Default, Clone)]
pub struct ProviderSettings {
    /// SES: the SNS topics this app's events may come from.
    pub topic_arns: Vec<String>,
    /// SendGrid: the Signed Event Webhook's verification key (base64 DER).
    pub public_key: Option<String>,
    /// Mailgun: the HTTP webhook signing key.
    pub signing_key: Option<String>,
    /// Mandrill: the webhook key.
    pub webhook_key: Option<String>,
    /// Mandrill: the URL exactly as registered (default: the one optsync prints).
    pub url: Option<String>,
    pub basic_user: Option<String>,
    pub basic_password: Option<String>,
    pub bearer_token: Option<String>,
    /// SparkPost with OAuth 2.0: the client id optsync gives it, and the client secret.
    pub oauth_client_id: Option<String>,
    pub oauth_client_secret: Option<String>,
    /// SendGrid and Mailgun: how old a signed timestamp may be.
    pub max_age_secs: Option<u64>,
}

/// A setting a provider needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    TopicArns,
    PublicKey,
    SigningKey,
    WebhookKey,
    /// A user and password.
    BasicAuth,
    /// A user and password, or a bearer token.
    BasicAuthOrBearer,
    /// A user and password, or an OAuth 2.0 client secret.
    BasicAuthOrOauth,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("{provider} needs {setting:?}")]
    Missing {
        provider: &'static str,
        setting: Setting,
    },
    #[error("{0}")]
    Invalid(String),
}

impl ProviderSettings {
    /// The configuration to store; `default_url` is the webhook URL optsync prints (what
    /// Mandrill signs unless it was given another).
    pub fn into_config(
        self,
        p: Provider,
        default_url: impl FnOnce() -> String,
    ) -> Result<ProviderConfig, SettingsError> {
        let missing = |setting| SettingsError::Missing {
            provider: p.name(),
            setting,
        };
        self.secrets_long_enough()?;
        if self.max_age_secs.is_some_and(|a| a > MAX_SIGNED_AGE_SECS) {
            return Err(SettingsError::Invalid(format!(
                "the freshness window may be at most {MAX_SIGNED_AGE_SECS} seconds (7 days)"
            )));
        }
        Ok(match p {
            Provider::Ses => {
                if self.topic_arns.is_empty() {
                    return Err(missing(Setting::TopicArns));
                }
                if let Some(bad) = self.topic_arns.iter().find(|a| !is_topic_arn(a)) {
                    return Err(SettingsError::Invalid(format!(
                        "{bad:?} is not an SNS topic ARN (arn:aws…:sns:REGION:ACCOUNT:TOPIC)"
                    )));
                }
                ProviderConfig::Ses {
                    topic_arns: self.topic_arns,
                }
            }
            Provider::Sendgrid => {
                let key = self.public_key.ok_or_else(|| missing(Setting::PublicKey))?;
                super::sendgrid_key_ok(&key).map_err(SettingsError::Invalid)?;
                ProviderConfig::Sendgrid {
                    public_key: key,
                    max_age_secs: self.max_age_secs.unwrap_or(SENDGRID_MAX_AGE_SECS),
                }
            }
            Provider::Mailgun => ProviderConfig::Mailgun {
                signing_key: self
                    .signing_key
                    .ok_or_else(|| missing(Setting::SigningKey))?,
                max_age_secs: self.max_age_secs.unwrap_or(MAILGUN_MAX_AGE_SECS),
            },
            Provider::Mandrill => ProviderConfig::Mandrill {
                webhook_key: self
                    .webhook_key
                    .ok_or_else(|| missing(Setting::WebhookKey))?,
                url: self.url.unwrap_or_else(default_url),
            },
            Provider::Sparkpost => self.sparkpost_auth(missing(Setting::BasicAuthOrOauth))?,
            Provider::Postmark | Provider::Mailjet | Provider::Brevo => {
                ProviderConfig::Http(self.http_auth(p).ok_or_else(|| {
                    missing(if takes_bearer(p) {
                        Setting::BasicAuthOrBearer
                    } else {
                        Setting::BasicAuth
                    })
                })?)
            }
        })
    }

    /// SparkPost: basic auth, or OAuth 2.0 client credentials (it cannot send a fixed bearer
    /// token); never both.
    fn sparkpost_auth(&self, missing: SettingsError) -> Result<ProviderConfig, SettingsError> {
        let basic = self.http_auth(Provider::Sparkpost);
        match (basic, &self.oauth_client_id, &self.oauth_client_secret) {
            (Some(b), None, None) => Ok(ProviderConfig::Http(b)),
            (None, Some(id), Some(secret)) => Ok(ProviderConfig::SparkpostOauth {
                client_id: id.clone(),
                client_secret: secret.clone(),
            }),
            (None, None, None) => Err(missing),
            _ => Err(SettingsError::Invalid(
                "SparkPost takes basic auth or an OAuth client secret, not both".into(),
            )),
        }
    }

    /// The secrets optsync and the provider share (a password, a bearer token, an OAuth
    /// client secret) are all a guesser needs, with no signature behind them: each must be
    /// at least [`MIN_SECRET_CHARS`] characters.
    fn secrets_long_enough(&self) -> Result<(), SettingsError> {
        for (what, secret) in [
            ("basic-auth password", &self.basic_password),
            ("bearer token", &self.bearer_token),
            ("OAuth client secret", &self.oauth_client_secret),
        ] {
            if secret
                .as_deref()
                .is_some_and(|s| s.chars().count() < MIN_SECRET_CHARS)
            {
                return Err(SettingsError::Invalid(format!(
                    "the {what} must be at least {MIN_SECRET_CHARS} characters: let `optsync provider add … --generate-secret` make and print one, or make one with `head -c 32 /dev/urandom | base64`"
                )));
            }
        }
        Ok(())
    }

    /// Basic auth, or (where the provider can send one) a bearer token; never both.
    fn http_auth(&self, p: Provider) -> Option<HttpAuth> {
        match (&self.basic_user, &self.basic_password, &self.bearer_token) {
            (Some(user), Some(password), None) => Some(HttpAuth::Basic {
                user: user.clone(),
                password: password.clone(),
            }),
            (None, None, Some(token)) if takes_bearer(p) => Some(HttpAuth::Bearer {
                token: token.clone(),
            }),
            _ => None,
        }
    }
}

/// The providers that can send a fixed bearer token (SparkPost sends OAuth 2.0 tokens it
/// fetches, never a fixed one).
pub fn takes_bearer(p: Provider) -> bool {
    matches!(p, Provider::Brevo)
}

fn is_topic_arn(a: &str) -> bool {
    let parts: Vec<&str> = a.split(':').collect();
    parts.len() == 6 && parts[0] == "arn" && parts[1].starts_with("aws") && parts[2] == "sns"
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn shared_secrets_are_at_least_32_characters() {
        let basic = |password: &str| ProviderSettings {
            basic_user: Some("u".into()),
            basic_password: Some(password.into()),
            ..ProviderSettings::default()
        };
        for p in [
            Provider::Postmark,
            Provider::Mailjet,
            Provider::Brevo,
            Provider::Sparkpost,
        ] {
            let short = basic("0123456789").into_config(p, url);
            match short {
                Err(SettingsError::Invalid(why)) => {
                    assert!(why.contains("--generate-secret"), "{why}")
                }
                other => panic!("{p:?}: {other:?}"),
            }
            assert!(basic(&LONG[..31]).into_config(p, url).is_err(), "{p:?}");
            assert!(basic(LONG).into_config(p, url).is_ok(), "{p:?}");
        }
        let bearer = |t: &str| ProviderSettings {
            bearer_token: Some(t.into()),
            ..ProviderSettings::default()
        };
        assert!(
            bearer("short-token")
                .into_config(Provider::Brevo, url)
                .is_err()
        );
        assert!(bearer(LONG).into_config(Provider::Brevo, url).is_ok());
    }

    fn url() -> String {
        "https://optsync.example.com/hooks/esp/mandrill/rc135".into()
    }

    #[test]
    fn each_provider_names_what_it_lacks() {
        for (p, want) in [
            (Provider::Ses, Setting::TopicArns),
            (Provider::Sendgrid, Setting::PublicKey),
            (Provider::Mailgun, Setting::SigningKey),
            (Provider::Mandrill, Setting::WebhookKey),
            (Provider::Postmark, Setting::BasicAuth),
            (Provider::Mailjet, Setting::BasicAuth),
            (Provider::Sparkpost, Setting::BasicAuthOrOauth),
            (Provider::Brevo, Setting::BasicAuthOrBearer),
        ] {
            let got = ProviderSettings::default().into_config(p, url);
            assert_eq!(
                got.err(),
                Some(SettingsError::Missing {
                    provider: p.name(),
                    setting: want
                }),
                "{p:?}"
            );
        }
    }

    #[test]
    fn values_are_checked_before_anything_is_stored() {
        let s = |f: fn(&mut ProviderSettings)| {
            let mut s = ProviderSettings::default();
            f(&mut s);
            s
        };
        let bad_arn = s(|s| s.topic_arns = vec!["arn:aws:sqs:us-east-1:1:q".into()]);
        assert!(matches!(
            bad_arn.into_config(Provider::Ses, url),
            Err(SettingsError::Invalid(_))
        ));
        let good_arn = s(|s| s.topic_arns = vec!["arn:aws:sns:us-east-1:123456789012:ses".into()]);
        assert!(good_arn.into_config(Provider::Ses, url).is_ok());
        let bad_key = s(|s| s.public_key = Some("not a key".into()));
        assert!(matches!(
            bad_key.into_config(Provider::Sendgrid, url),
            Err(SettingsError::Invalid(_))
        ));
        let too_old = s(|s| {
            s.signing_key = Some("k".into());
            s.max_age_secs = Some(MAX_SIGNED_AGE_SECS + 1);
        });
        assert!(too_old.into_config(Provider::Mailgun, url).is_err());
        // Postmark and SparkPost cannot send a fixed bearer token; Brevo can.
        let bearer = s(|s| s.bearer_token = Some(LONG.into()));
        assert!(bearer.clone().into_config(Provider::Postmark, url).is_err());
        assert!(
            bearer
                .clone()
                .into_config(Provider::Sparkpost, url)
                .is_err()
        );
        assert!(bearer.into_config(Provider::Brevo, url).is_ok());
        // SparkPost's OAuth client secret is long enough to stand alone.
        let oauth = |secret: &str| {
            ProviderSettings {
                oauth_client_id: Some("optsync-rc135".into()),
                oauth_client_secret: Some(secret.into()),
                ..ProviderSettings::default()
            }
            .into_config(Provider::Sparkpost, url)
        };
        assert!(matches!(oauth("short"), Err(SettingsError::Invalid(_))));
        assert!(matches!(
            oauth("0123456789abcdef0123456789abcdef"),
            Ok(ProviderConfig::SparkpostOauth { .. })
        ));
        let both = s(|s| {
            s.basic_user = Some("u".into());
            s.basic_password = Some(LONG.into());
            s.bearer_token = Some(LONG.into());
        });
        assert!(
            both.into_config(Provider::Sparkpost, url).is_err(),
            "one scheme, not two"
        );
        let mandrill = s(|s| s.webhook_key = Some("k".into()));
        match mandrill.into_config(Provider::Mandrill, url) {
            Ok(ProviderConfig::Mandrill { url: u, .. }) => assert_eq!(u, url()),
            other => panic!("{other:?}"),
        }
    }
}
