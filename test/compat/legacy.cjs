// A library that brings openai 3 (no request hooks) loads after register: the load fails, loudly.
require('openai-wrapi/register');
try {
  require('legacy-lib');
  console.log(JSON.stringify({ loaded: true }));
} catch (err) {
  console.log(JSON.stringify({ loaded: false, name: err.name, message: err.message }));
}
