// Runs on the audio thread: converts the microphone's float samples to 16-bit PCM and
// posts blocks of `blockSize` samples to the page, which sends them to the server.
// A "flush" message posts the partial block, then "flushed".
class PcmCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.blockSize = options.processorOptions.blockSize;
    this.block = new Int16Array(this.blockSize);
    this.filled = 0;
    this.port.onmessage = (event) => {
      if (event.data === "flush") {
        if (this.filled) this.port.postMessage(this.block.slice(0, this.filled).buffer);
        this.filled = 0;
        this.port.postMessage("flushed");
      }
    };
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) {
      for (let i = 0; i < channel.length; i++) {
        const s = Math.max(-1, Math.min(1, channel[i]));
        this.block[this.filled++] = s < 0 ? s * 32768 : s * 32767;
        if (this.filled === this.blockSize) {
          this.port.postMessage(this.block.buffer, [this.block.buffer]);
          this.block = new Int16Array(this.blockSize);
          this.filled = 0;
        }
      }
    }
    return true;
  }
}
registerProcessor("pcm-capture", PcmCapture);
