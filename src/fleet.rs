//! A fleet of real `burrowd` nodes sharing one real etcd, on loopback: nodes a, b, c… with
//! one CA and one cluster secret, node i's tcp tunnels on 127.0.0.(i+1), and agents
//! (the real `burrow`) given one or several of their addresses.

use crate::agent_bin::{agent_outcome, burrow, call, json, Outcome};
use crate::relay_bin::Burrowd;
use crate::{curl_command, free_port, Running, Scratch, TestEtcd};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The admin token every node of a test fleet takes.
pub const ADMIN: &str = "fleet-admin-token-for-tests";
/// Short, so a killed node's routes go quickly; the agent must be back well within it.
pub const LEASE_TTL: &str = "3";

/// etcd, the fleet's shared secret and CA, and its nodes.
pub struct TestFleet {
    /// The fleet's etcd.
    pub etcd: TestEtcd,
    dir: Scratch,
    secret: PathBuf,
    /// The CA every node's certificate is from, for agents' `root_cas` and curl.
    pub ca: String,
    /// The nodes, a, b, c…
    pub nodes: Vec<Burrowd>,
    /// The nodes' and agents' scratch folders, removed at the end of the test.
    scratch: Mutex<Vec<Scratch>>,
}

impl TestFleet {
    /// etcd and `n` nodes named a, b, c…, node i's tcp tunnels listening on 127.0.0.(i+1).
    pub fn start(n: usize) -> TestFleet {
        let etcd = TestEtcd::start();
        let dir = Scratch::new("fleet");
        let secret = dir.file("secret", "a-fleet-secret-of-some-length\n");
        let mut fleet = TestFleet {
            etcd,
            ca: String::new(),
            secret,
            dir,
            nodes: Vec::new(),
            scratch: Mutex::default(),
        };
        for i in 0..n {
            let node = fleet.node(i);
            fleet.nodes.push(node);
        }
        fleet
    }

    /// Starts node `i`: all nodes share the first one's CA, so agents trust every node.
    fn node(&mut self, i: usize) -> Burrowd {
        let id = ((b'a' + i as u8) as char).to_string();
        let state = Scratch::new(&format!("fleet-{id}"));
        if i > 0 {
            std::fs::create_dir_all(state.0.join("state")).unwrap();
            for f in ["ca.pem", "ca.key"] {
                let from = self.dir.0.join("ca").join(f);
                std::fs::copy(&from, state.0.join("state").join(f)).unwrap();
            }
        }
        let node_addr = format!("127.0.0.1:{}", free_port());
        let tcp_bind = format!("127.0.0.{}", i + 1);
        let endpoint = self.etcd.endpoint();
        let secret = self.secret.to_str().unwrap().to_string();
        let args = [
            "--cluster-etcd",
            &endpoint,
            "--node-id",
            &id,
            "--node-addr",
            &node_addr,
            "--cluster-secret-file",
            &secret,
            "--cluster-lease-ttl",
            LEASE_TTL,
            "--tcp-bind",
            &tcp_bind,
            "--lease-grace",
            "60",
        ];
        let node = Burrowd::start(&state, &args, &[("BURROWD_ADMIN_TOKEN", ADMIN)]);
        if i == 0 {
            let ca = self.dir.0.join("ca");
            std::fs::create_dir_all(&ca).unwrap();
            for f in ["ca.pem", "ca.key"] {
                std::fs::copy(state.0.join("state").join(f), ca.join(f)).unwrap();
            }
            self.ca = ca.join("ca.pem").to_str().unwrap().to_string();
        }
        self.scratch.lock().unwrap().push(state);
        node
    }

    /// An admin API call on node `i` with `method` and a JSON `body`.
    pub fn admin_call(
        &self,
        i: usize,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> (u16, String) {
        let url = format!("http://127.0.0.1:{}{path}", self.nodes[i].admin.unwrap());
        call(
            method,
            &url,
            body,
            &["-H", &format!("Authorization: Bearer {ADMIN}")],
        )
    }

    /// An admin API call on node `i`.
    pub fn admin(&self, i: usize, path: &str) -> (u16, String) {
        let url = format!("http://127.0.0.1:{}{path}", self.nodes[i].admin.unwrap());
        call(
            "GET",
            &url,
            None,
            &["-H", &format!("Authorization: Bearer {ADMIN}")],
        )
    }

    /// `burrow start --all` with `tunnels` (YAML under `tunnels:`) against `servers`; waits
    /// for `count` tunnels and returns the agent with its tunnels' public URLs by name.
    pub fn agent(
        &self,
        servers: &[u16],
        tunnels: &str,
        count: usize,
    ) -> (Running, Vec<(String, String)>) {
        self.agent_as(servers, None, tunnels, count)
    }

    /// [`TestFleet::agent`] with an auth token.
    pub fn agent_as(
        &self,
        servers: &[u16],
        token: Option<&str>,
        tunnels: &str,
        count: usize,
    ) -> (Running, Vec<(String, String)>) {
        let web = free_port();
        let authtoken = token.map_or(String::new(), |t| format!("authtoken: {t}\n"));
        let list: Vec<String> = servers.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let dir = Scratch::new("fleet-agent");
        let cfg = dir.file(
            "agent.yml",
            &format!(
                "{authtoken}server_addr: {}\nroot_cas: {}\nweb_addr: 127.0.0.1:{web}\ntunnels:\n{tunnels}",
                match list.len() {
                    1 => list[0].clone(),
                    _ => format!("[{}]", list.join(", ")),
                },
                self.ca
            ),
        );
        let home = Scratch::new("fleet-agent-home");
        let cmd = burrow(
            &home,
            &[
                "start",
                "--all",
                "--log",
                "stdout",
                "--config",
                cfg.to_str().unwrap(),
            ],
        );
        self.scratch.lock().unwrap().push(dir);
        let run = Running::start(cmd, home);
        let api = format!("http://127.0.0.1:{web}/api/tunnels");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (code, body) = call("GET", &api, None, &[]);
            if code == 200 {
                let list = json(&body)["tunnels"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let urls: Vec<(String, String)> = list
                    .iter()
                    .map(|t| {
                        let name = t["name"].as_str().unwrap_or_default().to_string();
                        (
                            name,
                            t["public_url"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect();
                if urls.len() >= count {
                    return (run, urls);
                }
            }
            assert!(
                Instant::now() < deadline,
                "the agent's tunnels did not come up"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `burrow http 9 -subdomain NAME` against node `i`: up, or refused with its message.
    pub fn claim(&self, i: usize, name: &str) -> Outcome {
        self.claim_as(i, name, None)
    }

    /// [`TestFleet::claim`] with an auth token.
    pub fn claim_as(&self, i: usize, name: &str, token: Option<&str>) -> Outcome {
        let dir = Scratch::new("fleet-claim");
        let config = dir.file("agent.yml", "web_addr: false\n");
        let server = format!("127.0.0.1:{}", self.nodes[i].control);
        let args = [
            "http",
            "9",
            "-subdomain",
            name,
            "-server",
            &server,
            "-root-cas",
            &self.ca,
            "-config",
            config.to_str().unwrap(),
        ];
        let auth = token.map(|t| ["-authtoken", t]);
        let args: Vec<&str> = args
            .iter()
            .copied()
            .chain(auth.iter().flatten().copied())
            .collect();
        agent_outcome(&dir, &args)
    }
}

/// `url` fetched with curl through node `node`'s listener for its scheme (`--resolve`);
/// (status, body).
pub fn fetch_via(node: &Burrowd, url: &str, ca: &str) -> (u16, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let host = rest.split([':', '/']).next().unwrap();
    let port = if scheme == "https" {
        node.https
    } else {
        node.http
    };
    let target = format!("{scheme}://{host}:{port}/");
    let resolve = format!("{host}:{port}:127.0.0.1");
    let out = curl_command()
        .args([
            "--max-time",
            "10",
            "-w",
            "\n%{http_code}",
            "--cacert",
            ca,
            "--resolve",
            &resolve,
            &target,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}
