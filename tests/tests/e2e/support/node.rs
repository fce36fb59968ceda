//! A region node running in the test process on a real PostgreSQL database and the real test
//! broker, served on an ephemeral loopback port and driven over HTTP.

use command_api::TokenConfig;
use region_node::{Application, Settings};
use reqwest::Method;
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::Answer;
use super::kafka::{brokers, unique_topic};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const EU_TOKEN: &str = "test-eu-west-token-0123456789";
pub const US_TOKEN: &str = "test-us-east-token-0123456789";
pub const PARTITIONS: i32 = 3;
/// Longer than any request of a test takes (imports and exports included).
const REQUEST_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

pub struct TestNode {
    pub base: String,
    pub topic: String,
    pub pool: PgPool,
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

fn token(name: &str, secret: &str, scope: &str) -> TokenConfig {
    TokenConfig {
        name: name.into(),
        secret: secret.into(),
        scopes: vec![scope.into()],
    }
}

impl TestNode {
    /// Starts region `region` on `pool` with topics of its own.
    pub async fn start(pool: PgPool, region: &str) -> Self {
        Self::start_with(pool, region, |_| {}).await
    }

    /// As [`TestNode::start`], with `adjust` applied to the settings last.
    pub async fn start_with(
        pool: PgPool,
        region: &str,
        adjust: impl FnOnce(&mut Settings),
    ) -> Self {
        let mut settings = Settings::load(None).unwrap();
        settings.region = domain::RegionId::parse(region).unwrap();
        settings.http.listen = "127.0.0.1:0".parse().unwrap();
        settings.kafka.brokers = brokers();
        settings.kafka.topic_prefix = unique_topic("test");
        settings.kafka.partitions = PARTITIONS;
        settings.tokens = vec![
            token("admin", ADMIN_TOKEN, "admin"),
            token("eu-operator", EU_TOKEN, "region:eu-west"),
            token("us-operator", US_TOKEN, "region:us-east"),
        ];
        adjust(&mut settings);
        let topic = settings.events_topic(region);
        let app = Application::build_with_pool(&settings, pool.clone(), None)
            .await
            .unwrap();
        let base = format!("http://{}", app.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        Self {
            base,
            topic,
            pool,
            // A request that is never answered fails the test instead of hanging it.
            client: reqwest::Client::builder()
                .timeout(REQUEST_LIMIT)
                .build()
                .unwrap(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Sends a request; `body` is sent verbatim as JSON text when given.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Answer {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            headers,
            body,
        }
    }

    /// `POST /v1/models` as admin.
    pub async fn register(&self, id: &str, provider: &str) -> Answer {
        let body = serde_json::json!({ "id": id, "provider": provider, "name": { "en": id } });
        self.send(
            Method::POST,
            "/v1/models",
            Some(ADMIN_TOKEN),
            &[],
            Some(&body.to_string()),
        )
        .await
    }

    /// `POST /v1/models/{id}/{action}` as admin.
    pub async fn lifecycle(&self, id: &str, action: &str) -> Answer {
        let path = format!("/v1/models/{id}/{action}");
        self.send(Method::POST, &path, Some(ADMIN_TOKEN), &[], None)
            .await
    }

    pub async fn event_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Stops the node gracefully and reports how it ended.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
