// Independent checkers for crates/secrets' oracle tests (run by tests/oracles.rs).
//   node oracle.mjs sops-age FILE KEYFILE     -> decrypted document as JSON (npm sops-age)
//   node oracle.mjs unwrap ARMORED KEYFILE    -> hex of the age payload (npm age-encryption)
//   node oracle.mjs yaml2json FILE            -> the single YAML document as JSON
import { readFileSync } from "node:fs";
import { decryptSops } from "sops-age";
import { Decrypter, armor } from "age-encryption";
import YAML from "yaml";

const [cmd, file, keyFile] = process.argv.slice(2);
const text = readFileSync(file, "utf8");
const secretKey = () =>
  readFileSync(keyFile, "utf8").split("\n").map((l) => l.trim()).find((l) => l.startsWith("AGE-SECRET-KEY-"));

if (cmd === "sops-age") {
  const plain = await decryptSops(text, { secretKey: secretKey(), fileType: "yaml" });
  process.stdout.write(JSON.stringify(plain));
} else if (cmd === "unwrap") {
  const d = new Decrypter();
  d.addIdentity(secretKey());
  const key = await d.decrypt(armor.decode(text));
  process.stdout.write(Buffer.from(key).toString("hex"));
} else if (cmd === "yaml2json") {
  process.stdout.write(JSON.stringify(YAML.parse(text)));
} else {
  console.error(`unknown command ${cmd}`);
  process.exit(2);
}
