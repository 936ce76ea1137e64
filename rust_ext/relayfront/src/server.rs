//! The front's composition: control socket, writer thread, listener, graceful stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::connection::{self, Served, Shared};
use crate::control::{Control, Outgoing};
use crate::error::Error;
use crate::fetch;
use crate::saturation;
use crate::settings::Settings;
use crate::writer::{Answers, Writer};

const BACKLOG: u32 = 1024;
/// A front whose relay was killed may still hold the port for a moment.
const BIND_RETRY: Duration = Duration::from_secs(10);

pub fn run(settings: Settings) -> Result<(), Error> {
    // Die with the relay (kill -9 included), and do not start for one already gone.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
    if nix::unistd::getppid().as_raw() != settings.parent_pid {
        return Err(Error::ParentGone);
    }
    let control = Control::connect(&settings.control)?;
    let saturation = saturation::Shared::default();
    let writer = Writer::open(&settings, saturation.clone())?;
    let reader = fetch::Reader::open(&settings)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let listener = runtime.block_on(bind(&settings))?;
    let port = listener.local_addr()?.port();

    let (outgoing, queue) = std::sync::mpsc::sync_channel(4096);
    let served = Arc::new(Served::default());
    let (jobs, job_queue) = mpsc::channel(1024);
    let (answers, mut answer_queue) = mpsc::unbounded_channel::<Answers>();
    // Each uploader hears its outcome from here, on the connections' own thread.
    runtime.spawn(async move {
        while let Some(batch) = answer_queue.recv().await {
            for (reply, outcome) in batch {
                let _ = reply.send(outcome); // the connection may be gone: stored anyway
            }
        }
    });
    let (stop_tx, stop) = watch::channel(None);
    let sender = {
        let control = control.clone();
        let served = Arc::clone(&served);
        thread::Builder::new()
            .name("front-control".into())
            .spawn(move || control.send_all(queue, &served))?
    };
    {
        let control = control.clone();
        thread::Builder::new()
            .name("front-watch".into())
            .spawn(move || control.watch(&stop_tx, &saturation))?;
    }
    let writer = {
        let control = control.clone();
        thread::Builder::new()
            .name("front-writer".into())
            .spawn(move || writer.work(job_queue, answers, control))?
    };
    outgoing
        .send(Outgoing::Ready { port })
        .map_err(|_| Error::ParentGone)?;
    let shared = Arc::new(Shared {
        settings,
        jobs,
        reader,
        served,
        control: outgoing,
        stop: stop.clone(),
    });
    // (The queue ends when the writer and the connections let go of their senders.)
    let graceful = runtime.block_on(accept(listener, shared, stop));
    drop(runtime); // every connection task and its senders are gone now
    if !graceful {
        return Err(Error::ParentGone);
    }
    writer
        .join()
        .map_err(|_| Error::Settings("the writer panicked".into()))??;
    sender
        .join()
        .map_err(|_| Error::Settings("the control thread panicked".into()))??;
    Ok(())
}

async fn bind(settings: &Settings) -> Result<TcpListener, Error> {
    let addr: SocketAddr = tokio::net::lookup_host((settings.host.as_str(), settings.port))
        .await?
        .next()
        .ok_or_else(|| Error::Settings(format!("{} resolves to no address", settings.host)))?;
    let started = Instant::now();
    loop {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(addr) {
            Ok(()) => return Ok(socket.listen(BACKLOG)?),
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse && started.elapsed() < BIND_RETRY =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Accept until stopped; true for a graceful stop (in-flight requests were given their time).
async fn accept(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<Option<bool>>,
) -> bool {
    let mut tasks = JoinSet::new();
    let graceful = loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tasks.spawn(connection::serve(stream, peer, Arc::clone(&shared)));
                }
                // Out of descriptors, say: let connections finish before accepting more.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            changed = stop.wait_for(Option::is_some) => {
                break changed.map(|s| s.unwrap_or(false)).unwrap_or(false);
            }
        }
    };
    drop(listener);
    if graceful {
        let deadline = shared.settings.shutdown();
        let _ = tokio::time::timeout(deadline, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
    }
    tasks.abort_all();
    graceful
}
