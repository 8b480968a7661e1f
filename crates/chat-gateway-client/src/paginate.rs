//! Lists as streams that follow `next_cursor` page by page.

use std::collections::VecDeque;

use futures_util::stream::{self, BoxStream, StreamExt};
use serde::de::DeserializeOwned;

use crate::client::{Call, Client, Page};
use crate::error::{Error, Result};
use crate::query::Query;

struct State<T> {
    client: Client,
    path: Vec<String>,
    query: Query,
    cursor: Option<String>,
    buf: VecDeque<T>,
    done: bool,
}

impl Client {
    /// One page of a list.
    pub(crate) async fn page<T: DeserializeOwned>(
        &self,
        path: &[&str],
        mut query: Query,
        cursor: Option<&str>,
    ) -> Result<Page<T>> {
        query.opt("cursor", cursor);
        self.json(Call::get(path, query)).await
    }

    /// Every item of a list, fetching the next page when the last one is
    /// used up. An error ends the stream after it is yielded.
    pub(crate) fn paginate<T>(&self, path: &[&str], query: Query) -> BoxStream<'static, Result<T>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let state = State {
            client: self.clone(),
            path: path.iter().map(|s| s.to_string()).collect(),
            query,
            cursor: None,
            buf: VecDeque::new(),
            done: false,
        };
        stream::unfold(state, |mut st| async move {
            loop {
                if let Some(item) = st.buf.pop_front() {
                    return Some((Ok(item), st));
                }
                if st.done {
                    return None;
                }
                let path: Vec<&str> = st.path.iter().map(String::as_str).collect();
                let page = st
                    .client
                    .page::<T>(&path, st.query.clone(), st.cursor.as_deref())
                    .await;
                match page {
                    Ok(page) => {
                        st.buf = page.data.into();
                        match page.next_cursor {
                            Some(next) if Some(&next) == st.cursor.as_ref() => {
                                st.done = true;
                                return Some((
                                    Err(Error::Decode(format!(
                                        "the gateway repeated cursor {next}"
                                    ))),
                                    st,
                                ));
                            }
                            Some(next) => st.cursor = Some(next),
                            None => st.done = true,
                        }
                    }
                    Err(e) => {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                }
            }
        })
        .boxed()
    }
}
