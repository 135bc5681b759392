//! The response body both daemons send: either one whole buffer, or buffers produced one after
//! another while the response is being written (a scrape's exposition is rendered piece by piece
//! as the socket takes it, so no whole copy of it is ever in memory).

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

pub struct Body(Kind);

enum Kind {
    Full(Option<Bytes>),
    Stream(Box<dyn Iterator<Item = Bytes> + Send>),
}

impl Body {
    /// A body of one buffer, sent with a `Content-Length`.
    pub fn full(bytes: impl Into<Bytes>) -> Body {
        Body(Kind::Full(Some(bytes.into())))
    }

    /// A body whose buffers are produced as the connection asks for them (chunked on HTTP/1.1).
    pub fn stream(chunks: impl Iterator<Item = Bytes> + Send + 'static) -> Body {
        Body(Kind::Stream(Box::new(chunks)))
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let next = match &mut self.get_mut().0 {
            Kind::Full(bytes) => bytes.take(),
            Kind::Stream(chunks) => chunks.find(|b| !b.is_empty()),
        };
        Poll::Ready(next.map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Full(bytes) => bytes.as_ref().is_none_or(Bytes::is_empty),
            Kind::Stream(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Stream(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn full_and_streamed_bodies_yield_their_bytes() {
        let full = Body::full("abc");
        assert_eq!(hyper::body::Body::size_hint(&full).exact(), Some(3));
        assert_eq!(full.collect().await.unwrap().to_bytes(), "abc");
        let parts = vec![Bytes::from("a"), Bytes::new(), Bytes::from("bc")];
        let streamed = Body::stream(parts.into_iter());
        assert_eq!(streamed.collect().await.unwrap().to_bytes(), "abc");
    }
}
