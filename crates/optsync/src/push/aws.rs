//! The AWS shared-credentials file (`~/.aws/credentials`): INI sections named by profile,
//! with `aws_access_key_id` and `aws_secret_access_key`.

/// One profile's key pair.
#[derive(Clone)]
pub struct AwsKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// The keys of `profile` in the file's text.
pub fn read_aws_credentials(text: &str, profile: &str) -> Result<AwsKeys, String> {
    let mut section = None;
    let (mut id, mut secret) = (None, None);
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.trim().to_string());
            continue;
        }
        if section.as_deref() != Some(profile) {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            match k.trim() {
                "aws_access_key_id" => id = Some(v.trim().to_string()),
                "aws_secret_access_key" => secret = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    match (id, secret) {
        (Some(access_key_id), Some(secret_access_key))
            if !access_key_id.is_empty() && !secret_access_key.is_empty() =>
        {
            Ok(AwsKeys {
                access_key_id,
                secret_access_key,
            })
        }
        _ => Err(format!(
            "profile [{profile}] with aws_access_key_id and aws_secret_access_key not found"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_named_profile_only() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key = S\n\n[relay]\naws_access_key_id=B\naws_secret_access_key=T\n";
        let k = read_aws_credentials(text, "relay").unwrap();
        assert_eq!(
            (k.access_key_id.as_str(), k.secret_access_key.as_str()),
            ("B", "T")
        );
        assert_eq!(
            read_aws_credentials(text, "default").unwrap().access_key_id,
            "A"
        );
        assert!(read_aws_credentials(text, "other").is_err());
        assert!(read_aws_credentials("[x]\naws_access_key_id=A\n", "x").is_err());
    }
}
