//! A TCP proxy on loopback that injects the faults clouds show: HTTP 503 (or 429)
//! answers, connections cut in the middle of a response, answers that come too
//! late. Requests otherwise pass through to the real server (moto, or the Drive
//! test server) untouched.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// Pass everything through.
    None,
    /// Answer the next `n` connections with this status and close them.
    Status { code: u16, n: u32 },
    /// Answer every connection with this status.
    Always(u16),
    /// Cut the next `n` connections after this many response bytes.
    CutAfter { bytes: usize, n: u32 },
    /// Hold the next `n` connections this long before passing them through.
    Slow { ms: u64, n: u32 },
}

pub struct FaultProxy {
    pub endpoint: String,
    fault: Arc<Mutex<Fault>>,
    injected: Arc<std::sync::atomic::AtomicU32>,
}

impl FaultProxy {
    pub fn start(upstream: &str) -> FaultProxy {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let fault = Arc::new(Mutex::new(Fault::None));
        let f = fault.clone();
        let injected = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let count = injected.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let up = upstream.clone();
                let mine = {
                    let mut g = f.lock().unwrap();
                    let now = *g;
                    *g = match now {
                        Fault::Status { code, n } if n > 1 => Fault::Status { code, n: n - 1 },
                        Fault::CutAfter { bytes, n } if n > 1 => {
                            Fault::CutAfter { bytes, n: n - 1 }
                        }
                        Fault::Slow { ms, n } if n > 1 => Fault::Slow { ms, n: n - 1 },
                        Fault::Status { .. } | Fault::CutAfter { .. } | Fault::Slow { .. } => {
                            Fault::None
                        }
                        other => other,
                    };
                    if now != Fault::None {
                        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    now
                };
                std::thread::spawn(move || serve(client, &up, mine));
            }
        });
        FaultProxy {
            endpoint,
            fault,
            injected,
        }
    }

    /// Set the fault for the connections to come; returns how many connections
    /// got a fault since the last call.
    pub fn set(&self, f: Fault) -> u32 {
        *self.fault.lock().unwrap() = f;
        self.injected.swap(0, std::sync::atomic::Ordering::SeqCst)
    }
}

fn serve(mut client: TcpStream, upstream: &str, fault: Fault) {
    let status = match fault {
        Fault::Status { code, .. } | Fault::Always(code) => Some(code),
        _ => None,
    };
    if let Some(code) = status {
        // Take what the client sends first, then refuse it.
        let _ = client.set_read_timeout(Some(Duration::from_millis(200)));
        let mut buf = [0u8; 65536];
        let _ = client.read(&mut buf);
        let body = "<Error><Code>SlowDown</Code><Message>injected</Message></Error>";
        let _ = write!(
            client,
            "HTTP/1.1 {code} Injected\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    if let Fault::Slow { ms, .. } = fault {
        std::thread::sleep(Duration::from_millis(ms));
    }
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut c_in, &mut s_out);
        let _ = s_out.shutdown(Shutdown::Write);
    });
    let mut s_in = server;
    let limit = match fault {
        Fault::CutAfter { bytes, .. } => Some(bytes),
        _ => None,
    };
    let mut sent = 0usize;
    let mut buf = [0u8; 65536];
    loop {
        let n = match s_in.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let n = match limit {
            Some(l) if sent + n >= l => {
                let _ = client.write_all(&buf[..l - sent]);
                break; // cut in the middle of the response
            }
            _ => n,
        };
        if client.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n;
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = s_in.shutdown(Shutdown::Both);
}
