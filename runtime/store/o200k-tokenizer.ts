// The o200k_base tokenizer (its 2.7 MB table included), imported only by tokenizer.ts and only with
// import(): a module of its own, so the Lambda bundle ships it as its own chunk
// (`chunks/o200k-tokenizer-<hash>.mjs`) that a cold start does not parse.
export { countTokens, setMergeCacheSize } from 'gpt-tokenizer';
