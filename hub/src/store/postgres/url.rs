//! Store URLs: which backend a `--store` names, and the URL as it may be
//! shown (without its password).

/// Whether `store` names a PostgreSQL store.
pub fn is_postgres(store: &str) -> bool {
    store.starts_with("postgres://") || store.starts_with("postgresql://")
}

/// `url` without its password: `postgres://user:****@host/db`, and
/// `password=****` in a key-value string.
pub fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let tail = redact_query(tail);
        if let Some((userinfo, host)) = authority.rsplit_once('@') {
            if let Some((user, _)) = userinfo.split_once(':') {
                return format!("{scheme}://{user}:****@{host}{tail}");
            }
        }
        return format!("{scheme}://{authority}{tail}");
    }
    url.split(' ')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=****"),
            _ => kv.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn redact_query(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_string();
    };
    let q: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=****"),
            _ => kv.to_string(),
        })
        .collect();
    format!("{path}?{}", q.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("postgres://nd:s3cret@db:5432/nextdeploy"),
            "postgres://nd:****@db:5432/nextdeploy"
        );
        assert_eq!(
            redact("postgres://nd@db/x?password=s3cret&sslmode=disable"),
            "postgres://nd@db/x?password=****&sslmode=disable"
        );
        assert_eq!(redact("postgresql://a:b:c@h"), "postgresql://a:****@h");
        assert_eq!(
            redact("host=db password=x user=y"),
            "host=db password=**** user=y"
        );
        assert!(is_postgres("postgres://h/db") && !is_postgres("/var/lib/x.db"));
    }
}
