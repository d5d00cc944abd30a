//! The gRPC codec of `cart.v1`: prost messages, each reply encoded whole into a buffer of the
//! thread's and copied into the frame once.
//!
//! tonic's frame buffer takes every write as a call of its own; a protobuf message is written
//! a byte or a field at a time (each varint byte, tag and length), so a Cart with its six
//! timestamps made some seventy such calls. The replies that carry a cart are written by
//! [`super::wire`], the other messages by prost. Decoding is prost's own.

use std::cell::RefCell;
use std::marker::PhantomData;

use prost::Message;
use tonic::Status;

use super::wire::Encode;
use tonic::codec::{BufferSettings, EncodeBuf};

/// Replies larger than this give their buffer back after the copy, so that one large cart
/// does not keep it for the thread's life.
const KEPT_BUFFER_BYTES: usize = 64 * 1024;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The codec the generated client and server use (`codec_path` in the build script).
#[derive(Debug, Clone)]
pub struct Codec<T, U> {
    _messages: PhantomData<(T, U)>,
}

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Self {
            _messages: PhantomData,
        }
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: Encode + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = Encoder<T>;
    type Decoder = tonic_prost::ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        Encoder {
            _message: PhantomData,
        }
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::new(BufferSettings::default())
    }
}

/// Encodes a message into the thread's buffer, then into the frame in one copy.
#[derive(Debug, Clone)]
pub struct Encoder<T> {
    _message: PhantomData<T>,
}

impl<T: Encode> tonic::codec::Encoder for Encoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        SCRATCH.with_borrow_mut(|scratch| {
            scratch.clear();
            item.encode_into(scratch);
            prost::bytes::BufMut::put_slice(buf, scratch);
            if scratch.capacity() > KEPT_BUFFER_BYTES {
                *scratch = Vec::new();
            }
        });
        Ok(())
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;
    use tonic::codec::Codec as _;

    /// A message through this codec's encoder is the bytes prost encodes, and decodes back.
    #[tokio::test]
    async fn replies_encode_to_prosts_bytes() {
        let cart = pb::Cart {
            id: "c1".into(),
            currency: "USD".into(),
            version: 300,
            hmac: "x".repeat(44),
            created_at: Some(prost_types::Timestamp {
                seconds: 1_790_000_000,
                nanos: 123_000_000,
            }),
            metadata: [("k".to_string(), "v".to_string())].into(),
            items: (0..3)
                .map(|n| pb::LineItem {
                    sku: format!("sku-{n}"),
                    quantity: n + 1,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let big = pb::Cart {
            clear_reason: "y".repeat(2 * KEPT_BUFFER_BYTES),
            ..cart.clone()
        };
        for message in [cart, pb::Cart::default(), big.clone(), cart_again(&big)] {
            let mut codec = Codec::<pb::Cart, pb::Cart>::default();
            let body = tonic::codec::EncodeBody::new_server(
                codec.encoder(),
                tokio_stream::iter([Ok::<_, Status>(message.clone())]),
                None,
                Default::default(),
                None,
            );
            let framed = axum::body::to_bytes(axum::body::Body::new(body), usize::MAX)
                .await
                .unwrap();
            let expected = message.encode_to_vec();
            // The gRPC frame: uncompressed flag, big-endian length, the message.
            assert_eq!(framed[0], 0);
            assert_eq!(
                u32::from_be_bytes(framed[1..5].try_into().unwrap()) as usize,
                expected.len()
            );
            assert_eq!(&framed[5..], &expected[..]);
            assert_eq!(pb::Cart::decode(&framed[5..]).unwrap(), message);
        }
    }

    fn cart_again(cart: &pb::Cart) -> pb::Cart {
        pb::Cart {
            clear_reason: String::new(),
            ..cart.clone()
        }
    }
}
