//! The commands that talk to a running `serve` over plain HTTP on its (loopback) address:
//! `healthcheck`, `trigger`, `reload`.

use std::net::SocketAddr;

use super::{CommandError, Exit};

/// `healthcheck`: 0 if `serve` answers `/healthz` with 200 within 5 seconds, else 1.
pub(super) async fn healthcheck(address: SocketAddr) -> Exit {
    Ok(match local_request(address, "GET", "/healthz").await {
        Ok((200, _)) => 0,
        Ok((status, _)) => {
            eprintln!("unhealthy: {address}/healthz answered {status}");
            1
        }
        Err(e) => {
            eprintln!("unhealthy: {e}");
            1
        }
    })
}

/// `trigger`: asks `serve` to drill `job` now.
pub(super) async fn trigger(job: &str, address: SocketAddr) -> Exit {
    ask(address, &format!("/jobs/{job}/run"), 202).await
}

/// `reload`: asks `serve` to reload its configuration.
pub(super) async fn reload(address: SocketAddr) -> Exit {
    ask(address, "/-/reload", 200).await
}

/// POSTs to `path` and prints the answer: 0 when the status is `accepted`, else an error
/// naming the status and the answer.
async fn ask(address: SocketAddr, path: &str, accepted: u16) -> Exit {
    let (status, body) = local_request(address, "POST", path)
        .await
        .map_err(CommandError::error)?;
    if status != accepted {
        return Err(CommandError::error(format!(
            "{address} answered {status}: {}",
            body.trim()
        )));
    }
    println!("{}", body.trim());
    Ok(0)
}

/// One plain-HTTP request to a `serve` on `address`, answered within 5 seconds: the status and
/// the body, or why there was no answer.
async fn local_request(
    address: std::net::SocketAddr,
    method: &str,
    path: &str,
) -> Result<(u16, String), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let asked = async {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        stream
            .write_all(
                format!("{method} {path} HTTP/1.0\r\nHost: {address}\r\nContent-Length: 0\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = match tokio::time::timeout(std::time::Duration::from_secs(5), asked).await {
        Ok(Ok(answer)) => String::from_utf8_lossy(&answer).into_owned(),
        Ok(Err(e)) => return Err(format!("cannot ask {address}{path}: {e}")),
        Err(_) => return Err(format!("{address}{path} did not answer within 5 seconds")),
    };
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{address}{path} did not answer in HTTP"))?;
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}
