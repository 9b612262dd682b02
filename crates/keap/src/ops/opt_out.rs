//! Opting an address out: the write paths, each verified by a read-back, and the probes
//! that tell which path an app has.

use reqwest::Method;
use serde_json::{Value as Json, json};

use super::*;

impl KeapClient {
    /// Opts an address out through the configured method: REST v2, XML-RPC, or (`Auto`)
    /// REST v2 first and XML-RPC when REST leaves the address marketable (Keap's REST
    /// opt-out is undocumented). See [`Self::opt_out_via`].
    pub async fn opt_out(&self, email: &EmailAddress, reason: &str) -> Result<OptOutReport, Error> {
        let order: &[Api] = match self.inner.method {
            OptOutMethod::Rest => &[Api::Rest],
            OptOutMethod::XmlRpc => &[Api::XmlRpc],
            OptOutMethod::Auto => &[Api::Rest, Api::XmlRpc],
        };
        self.opt_out_via(email, reason, order, false).await
    }

    /// Tries each write path in `order` until a read-back shows the address in a stop or
    /// terminal status. A path that is ignored, refused or unavailable is recorded and the
    /// next is tried; the report is `verified` only when a read-back showed it. Errors that
    /// a retry may cure (timeouts, 5xx, throttling) end the attempt.
    ///
    /// `trust_answer`: take the REST write's own answer as the read-back when it shows a stop
    /// status (for an app whose REST path a read-back has already proven; one call saved).
    pub async fn opt_out_via(
        &self,
        email: &EmailAddress,
        reason: &str,
        order: &[Api],
        trust_answer: bool,
    ) -> Result<OptOutReport, Error> {
        let reason = if reason.trim().is_empty() {
            "API Opt Out"
        } else {
            reason
        };
        let before = self.calls_made();
        let mut attempts: Vec<PathAttempt> = Vec::new();
        let mut status_after = None;
        for &api in order {
            let outcome = match api {
                Api::Rest => self.try_rest_opt_out(email, reason, trust_answer).await?,
                Api::XmlRpc => self.try_xmlrpc_opt_out(email, reason).await?,
            };
            if let AttemptOutcome::Took(s) | AttemptOutcome::Ignored(s) = &outcome {
                status_after = *s;
            }
            let took = matches!(outcome, AttemptOutcome::Took(_));
            attempts.push(PathAttempt { api, outcome });
            if took {
                break;
            }
        }
        let verified = matches!(
            attempts.last(),
            Some(PathAttempt {
                outcome: AttemptOutcome::Took(_),
                ..
            })
        );
        let path = match (attempts.last().map(|a| a.api), attempts.len()) {
            (Some(Api::XmlRpc), 1) => OptOutPath::XmlRpc,
            (Some(Api::XmlRpc), _) => OptOutPath::XmlRpcFallback,
            _ => OptOutPath::Rest,
        };
        if !verified {
            tracing::warn!(email = %email, attempts = ?attempts, "no write path opted the address out");
        }
        Ok(OptOutReport {
            email: email.clone(),
            status_after,
            verified,
            path,
            calls: (self.calls_made() - before) as u32,
            attempts,
        })
    }

    /// The status read back after a write.
    async fn read_back(&self, email: &EmailAddress) -> Result<AttemptOutcome, Error> {
        let after = self.address_status(email).await?;
        Ok(if after.is_some_and(|s| s.is_stop() || s.is_terminal()) {
            AttemptOutcome::Took(after)
        } else {
            AttemptOutcome::Ignored(after)
        })
    }

    /// `PATCH …/status {"opted_in": false}`, then a read-back (or, trusted, its own answer).
    async fn try_rest_opt_out(
        &self,
        email: &EmailAddress,
        reason: &str,
        trust_answer: bool,
    ) -> Result<AttemptOutcome, Error> {
        let url = self.rest_url(&["emailAddresses", email.as_str(), "status"])?;
        let body = json!({"opted_in": false, "reason": reason});
        match self.rest(Method::PATCH, url, Some(body)).await {
            Ok(answer) => {
                let said = answer
                    .get("status")
                    .and_then(Json::as_str)
                    .and_then(|s| parse_status(s).ok());
                match said {
                    Some(s) if trust_answer && (s.is_stop() || s.is_terminal()) => {
                        Ok(AttemptOutcome::Took(Some(s)))
                    }
                    _ => self.read_back(email).await,
                }
            }
            // REST v2 knows only addresses Keap has a row for; XML-RPC creates one.
            Err(Error::NotFound(why) | Error::InvalidRequest(why)) => {
                Ok(AttemptOutcome::Refused(why))
            }
            Err(e) => Err(e),
        }
    }

    /// `APIEmailService.optOut`, then a read-back.
    async fn try_xmlrpc_opt_out(
        &self,
        email: &EmailAddress,
        reason: &str,
    ) -> Result<AttemptOutcome, Error> {
        match self.opt_out_xmlrpc(email, reason).await {
            Ok(_) => self.read_back(email).await,
            Err(Error::XmlRpcUnavailable(why)) => Ok(AttemptOutcome::Unavailable(why)),
            Err(Error::Fault {
                code,
                category,
                message,
            }) if !matches!(code, 3 | 4 | 6 | 500) => Ok(AttemptOutcome::Refused(format!(
                "fault {code} [{category}] {message}"
            ))),
            Err(e) => Err(e),
        }
    }

    /// One cheap REST call (a one-contact page of ids): the credential works and REST
    /// answers. Keap's quota headers come back with it (see the pacer's budget).
    pub async fn probe_rest(&self) -> Result<(), Error> {
        let url = self.rest_page_url("contacts", &[("fields", "id")], 1, None)?;
        self.rest(Method::GET, url, None).await.map(|_| ())
    }

    /// One cheap XML-RPC call: `Ok` when XML-RPC answers (a fault is an answer too),
    /// [`Error::XmlRpcUnavailable`] when it is switched off.
    pub async fn probe_xmlrpc(&self) -> Result<(), Error> {
        match self
            .xmlrpc(
                "APIEmailService.getOptStatus",
                vec![Value::str("probe@optsync.invalid")],
            )
            .await
        {
            Ok(_) | Err(Error::Fault { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn opt_out_xmlrpc(&self, email: &EmailAddress, reason: &str) -> Result<bool, Error> {
        let v = self
            .xmlrpc(
                "APIEmailService.optOut",
                vec![Value::str(email.as_str()), Value::str(reason)],
            )
            .await?;
        v.as_bool().ok_or_else(|| protocol("optOut: not a boolean"))
    }
}
