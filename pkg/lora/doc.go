// Package lora fine-tunes models as mlx_lm's lora command does: LoRA, DoRA
// and full fine-tuning on mlx_lm's JSONL data, writing and reading
// mlx_lm's adapter folders (and importing Hugging Face PEFT adapters).
//
// # Data
//
// LoadDir reads train/valid/test.jsonl (format detected from the first
// record: text, prompt+completion, chat messages with optional tools; a bad
// line is reported as file:line); Dataset.Tokenize applies the chat template
// and --mask-prompt offsets; NewBatcher yields mlx_lm's length-sorted,
// right-padded batches in numpy's permutation order for the seed.
//
// # Layers and targeting
//
// Apply swaps adapter layers into the model's struct tree through the
// model's Linears() slots and, for embeddings and MoE expert stacks, a
// reflection walk matched against Parameters() (no change to the
// architectures): LoRALinear (dense or quantized base, which stays packed),
// DoRALinear, LoRAEmbedding/DoRAEmbedding (also the tied output
// projection), LoRASwitchLinear. It targets every linear-like module of the
// last NumLayers blocks, or the block-relative lora_parameters.keys (a key
// naming a top-level module such as lm_head wraps it too); "full" trains the
// float parameters of those blocks. Tuned.Params is the flat, named list of
// trainable arrays: the optimizer state, the gradients and the adapter file
// all use it. ApplyAdapter puts a saved (or PEFT) adapter on a model.
//
// # Training
//
// Loss is mlx_lm's default_loss (masked next-token cross-entropy in
// float32, summed / ntoks); MaskStrict (default) leaves out the padding
// target mlx_lm also counts, MaskMLX reproduces it. Train is mlx_lm's loop:
// gradient accumulation, validation at iteration 1, every StepsPerEval and
// at the end, report and save lines in mlx_lm's release format, atomic
// adapter files, and on a cancelled context the current adapter saved
// before returning ErrInterrupted.
//
// Gradient checkpointing (--grad-checkpoint, TrainOptions.GradCheckpoint,
// CheckpointBlocks) runs every transformer block through engine.Checkpoint
// via model.SetBlockHook, as mlx_lm wraps each block's __call__ in
// mx.checkpoint: the backward pass recomputes a block's intermediates
// instead of keeping them, with the same loss and gradients.
package lora
