//! Clients the traffic checks use: an OpenAI-style client and an MCP client.

pub mod mcp;
pub mod openai;
