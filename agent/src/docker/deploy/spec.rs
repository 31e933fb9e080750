//! The new container's configuration: what the user gave the old container
//! carries over; what came from the old image follows the new image. This is
//! the difference between a deploy and a clone.
//!
//! Docker merges an image's defaults into a container at create time (ENV by
//! key, LABELs, exposed ports, volumes; CMD, ENTRYPOINT, HEALTHCHECK, USER and
//! WORKDIR when the container sets none). So the new container is created with
//! only the settings that differ from the OLD image's defaults, and Docker
//! fills in the NEW image's defaults.

use std::collections::{HashMap, HashSet};

use bollard::models::{
    ContainerConfig, ContainerCreateBody, ContainerInspectResponse, EndpointSettings, HostConfig,
    ImageConfig, Mount, MountType, NetworkingConfig,
};

/// The create body for the new container, plus the networks to connect after
/// create (the API takes one network at create on engines before 1.44).
pub struct NewSpec {
    /// Create body.
    pub body: ContainerCreateBody,
    /// Further networks with their endpoint settings.
    pub extra_networks: Vec<(String, EndpointSettings)>,
}

/// Env entries the user set: those not identical to an old-image default.
pub fn user_env(container: &[String], old_image: &[String]) -> Vec<String> {
    let image: HashSet<&str> = old_image.iter().map(String::as_str).collect();
    container
        .iter()
        .filter(|e| !image.contains(e.as_str()))
        .cloned()
        .collect()
}

/// Labels the user set: those not identical to an old-image label.
pub fn user_labels(
    container: &HashMap<String, String>,
    old_image: &HashMap<String, String>,
) -> HashMap<String, String> {
    container
        .iter()
        .filter(|(k, v)| old_image.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A setting the user set explicitly (differs from the old image's), else none.
fn keep_own<T: PartialEq + Clone>(container: &Option<T>, old_image: &Option<T>) -> Option<T> {
    match (container, old_image) {
        (Some(c), Some(i)) if c == i => None,
        (Some(c), _) => Some(c.clone()),
        (None, _) => None,
    }
}

fn copy_endpoint(e: &EndpointSettings, old_id: &str) -> EndpointSettings {
    // Docker adds the short container id as an alias on user networks; the new
    // container gets its own.
    let aliases = e.aliases.as_ref().map(|a| {
        a.iter()
            .filter(|x| !old_id.starts_with(x.as_str()))
            .cloned()
            .collect::<Vec<_>>()
    });
    EndpointSettings {
        aliases: aliases.filter(|a| !a.is_empty()),
        links: e.links.clone(),
        ipam_config: e.ipam_config.clone(),
        driver_opts: e.driver_opts.clone(),
        mac_address: None,
        ..Default::default()
    }
}

/// Build the new container's spec from the old container and both images.
pub fn build(
    old: &ContainerInspectResponse,
    old_image: &ImageConfig,
    new_image_ref: &str,
) -> NewSpec {
    let empty = ContainerConfig::default();
    let c = old.config.as_ref().unwrap_or(&empty);
    let old_id = old.id.clone().unwrap_or_default();
    let env = user_env(
        c.env.as_deref().unwrap_or_default(),
        old_image.env.as_deref().unwrap_or_default(),
    );
    let labels = user_labels(
        &c.labels.clone().unwrap_or_default(),
        &old_image.labels.clone().unwrap_or_default(),
    );
    let default_hostname = old_id.get(..12).unwrap_or("");
    let hostname = c
        .hostname
        .clone()
        .filter(|h| h != default_hostname && !h.is_empty());
    let exposed = user_exposed_ports(c, old_image);
    let mut host: HostConfig = old.host_config.clone().unwrap_or_default();
    carry_anonymous_volumes(old, &mut host);
    let (first, extra_networks) = split_networks(old, &host, &old_id);
    let body = ContainerCreateBody {
        hostname,
        domainname: c.domainname.clone().filter(|d| !d.is_empty()),
        user: keep_own(&c.user, &old_image.user).filter(|u| !u.is_empty()),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        tty: c.tty,
        open_stdin: c.open_stdin,
        stdin_once: c.stdin_once,
        attach_stdin: c.attach_stdin,
        attach_stdout: c.attach_stdout,
        attach_stderr: c.attach_stderr,
        env: (!env.is_empty()).then_some(env),
        cmd: keep_own(&c.cmd, &old_image.cmd),
        entrypoint: keep_own(&c.entrypoint, &old_image.entrypoint),
        healthcheck: keep_own(&c.healthcheck, &old_image.healthcheck),
        working_dir: keep_own(&c.working_dir, &old_image.working_dir).filter(|w| !w.is_empty()),
        labels: (!labels.is_empty()).then_some(labels),
        stop_signal: keep_own(&c.stop_signal, &old_image.stop_signal),
        stop_timeout: c.stop_timeout,
        image: Some(new_image_ref.to_string()),
        host_config: Some(host),
        networking_config: first.map(|(name, e)| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(name, e)])),
        }),
        ..Default::default()
    };
    NewSpec {
        body,
        extra_networks,
    }
}

/// Ports the old container exposed beyond what its image exposes.
fn user_exposed_ports(c: &ContainerConfig, old_image: &ImageConfig) -> Vec<String> {
    let image: HashSet<&String> = old_image.exposed_ports.iter().flatten().collect();
    c.exposed_ports
        .iter()
        .flatten()
        .filter(|p| !image.contains(p))
        .cloned()
        .collect()
}

/// Anonymous volumes (from VOLUME in the image or -v /path) belong to the old
/// container; mount them by name in `host` so the data carries over.
fn carry_anonymous_volumes(old: &ContainerInspectResponse, host: &mut HostConfig) {
    let explicit: HashSet<String> = host
        .binds
        .iter()
        .flatten()
        .filter_map(|b| b.split(':').nth(1).map(str::to_string))
        .chain(
            host.mounts
                .iter()
                .flatten()
                .filter_map(|m| m.target.clone()),
        )
        .collect();
    let mut mounts = host.mounts.clone().unwrap_or_default();
    for m in old.mounts.iter().flatten() {
        let (Some(dest), Some(name)) = (&m.destination, &m.name) else {
            continue;
        };
        if m.typ.as_deref() == Some("volume") && !explicit.contains(dest) {
            mounts.push(Mount {
                target: Some(dest.clone()),
                source: Some(name.clone()),
                typ: Some(MountType::VOLUME),
                read_only: m.rw.map(|rw| !rw),
                ..Default::default()
            });
        }
    }
    host.mounts = (!mounts.is_empty()).then_some(mounts);
}

/// A network by name and the new container's endpoint on it.
type Network = (String, EndpointSettings);

/// The network the new container is created on (its network mode's first)
/// and the others to connect it to after; none when the mode has no
/// endpoints (host, none, another container's).
fn split_networks(
    old: &ContainerInspectResponse,
    host: &HostConfig,
    old_id: &str,
) -> (Option<Network>, Vec<Network>) {
    let network_mode = host.network_mode.clone().unwrap_or_default();
    let mut nets: Vec<(String, EndpointSettings)> = old
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|(name, e)| (name, copy_endpoint(&e, old_id)))
        .collect();
    nets.sort_by(|a, b| {
        (a.0 != network_mode, a.0.clone()).cmp(&(b.0 != network_mode, b.0.clone()))
    });
    let uses_endpoints = !(network_mode == "host"
        || network_mode == "none"
        || network_mode.starts_with("container:"));
    if uses_endpoints && !nets.is_empty() {
        let first = nets.remove(0);
        (Some(first), nets)
    } else {
        (None, Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{HealthConfig, MountPoint};

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn user_settings_carry_over_image_defaults_follow() {
        let old_image = ImageConfig {
            env: Some(s(&["PATH=/bin", "APP_MODE=v1"])),
            cmd: Some(s(&["serve"])),
            labels: Some(HashMap::from([("version".into(), "1".into())])),
            healthcheck: Some(HealthConfig {
                test: Some(s(&["CMD", "true"])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let old = ContainerInspectResponse {
            id: Some("0123456789abcdef".into()),
            config: Some(ContainerConfig {
                hostname: Some("0123456789ab".into()),
                env: Some(s(&["PATH=/bin", "APP_MODE=v1", "DB_URL=postgres://x"])),
                cmd: Some(s(&["serve"])),
                labels: Some(HashMap::from([
                    ("version".into(), "1".into()),
                    ("team".into(), "web".into()),
                ])),
                healthcheck: Some(HealthConfig {
                    test: Some(s(&["CMD", "true"])),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                binds: Some(s(&["/srv/data:/data"])),
                ..Default::default()
            }),
            mounts: Some(vec![
                MountPoint {
                    typ: Some("bind".into()),
                    destination: Some("/data".into()),
                    ..Default::default()
                },
                MountPoint {
                    typ: Some("volume".into()),
                    name: Some("abc123".into()),
                    destination: Some("/cache".into()),
                    rw: Some(true),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let spec = build(&old, &old_image, "app:v2");
        let b = spec.body;
        assert_eq!(b.image.as_deref(), Some("app:v2"));
        assert_eq!(
            b.env,
            Some(s(&["DB_URL=postgres://x"])),
            "only the user's env; the new image's defaults come from Docker"
        );
        assert_eq!(b.cmd, None, "cmd came from the old image");
        assert_eq!(b.healthcheck, None, "healthcheck came from the old image");
        assert_eq!(b.hostname, None, "the default hostname is the old id");
        assert_eq!(
            b.labels,
            Some(HashMap::from([("team".to_string(), "web".to_string())]))
        );
        let host = b.host_config.unwrap();
        assert_eq!(host.binds, Some(s(&["/srv/data:/data"])));
        let mounts = host.mounts.unwrap();
        assert_eq!(mounts.len(), 1, "the anonymous volume is carried by name");
        assert_eq!(mounts[0].source.as_deref(), Some("abc123"));
        assert_eq!(mounts[0].target.as_deref(), Some("/cache"));
    }

    #[test]
    fn explicit_overrides_are_kept() {
        let old_image = ImageConfig {
            cmd: Some(s(&["serve"])),
            user: Some("app".into()),
            ..Default::default()
        };
        let old = ContainerInspectResponse {
            config: Some(ContainerConfig {
                cmd: Some(s(&["serve", "--debug"])),
                user: Some("root".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let b = build(&old, &old_image, "x").body;
        assert_eq!(b.cmd, Some(s(&["serve", "--debug"])));
        assert_eq!(b.user.as_deref(), Some("root"));
    }

    #[test]
    fn networks_first_at_create_rest_after() {
        let mut nets = HashMap::new();
        nets.insert(
            "backend".to_string(),
            EndpointSettings {
                aliases: Some(s(&["db-client", "0123456789ab"])),
                ..Default::default()
            },
        );
        nets.insert("front".to_string(), EndpointSettings::default());
        let old = ContainerInspectResponse {
            id: Some("0123456789abcdef0000".into()),
            host_config: Some(HostConfig {
                network_mode: Some("front".into()),
                ..Default::default()
            }),
            network_settings: Some(bollard::models::NetworkSettings {
                networks: Some(nets),
                ..Default::default()
            }),
            ..Default::default()
        };
        let spec = build(&old, &ImageConfig::default(), "x");
        let create = spec
            .body
            .networking_config
            .unwrap()
            .endpoints_config
            .unwrap();
        assert!(create.contains_key("front"));
        assert_eq!(spec.extra_networks.len(), 1);
        assert_eq!(spec.extra_networks[0].0, "backend");
        assert_eq!(spec.extra_networks[0].1.aliases, Some(s(&["db-client"])));
    }
}
