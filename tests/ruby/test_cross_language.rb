# frozen_string_literal: true

require_relative "helper"
require "open3"

# One queue, two languages: what the Python package schedules the Ruby gem
# consumes unchanged (binary payload, id, due time), and the reverse. The
# Python side runs in a child process (python3 with PYTHONPATH at
# bindings/python); the extension is built in place when it is missing.
# Skipped, saying why, only when python3 or its extension is unavailable.
class TestCrossLanguage < ReactisTest
  PY_DIR = File.join(ROOT, "bindings", "python")
  PAYLOAD = "\x00\xFFcross\x00language\xFE\x00".b
  PY_TIMEOUT = 30

  # [python3, nil] when `import reactis` works (after building the
  # extension in place if needed), [nil, reason] otherwise.
  def self.find_python
    py = ENV.fetch("PATH", "").split(File::PATH_SEPARATOR).map { |d| File.join(d, "python3") }
            .find { |f| File.executable?(f) }
    return [nil, "python3 not found"] unless py
    return [py, nil] if importable?(py)
    _out, status = Open3.capture2e(py, "setup.py", "-q", "build_ext", "--inplace", chdir: ROOT)
    return [nil, "the Python extension could not be built (python3 setup.py build_ext --inplace)"] unless status.success?
    importable?(py) ? [py, nil] : [nil, "import reactis fails even after build_ext --inplace"]
  rescue SystemCallError => e
    [nil, "python3 could not be run: #{e.message}"]
  end

  def self.importable?(py)
    _out, status = Open3.capture2e({ "PYTHONPATH" => PY_DIR }, py, "-c", "import reactis.cimpl")
    status.success?
  end

  # Found (and the extension built when needed) as the file loads, outside
  # the time bound of each test.
  PYTHON = find_python

  def setup
    super
    py, why = PYTHON
    skip("cross-language tests need Python: #{why}") unless py
    @python = py
    @redis = server
  end

  # Runs a Python script in a child (bounded); returns its stdout.
  def python(script, *args)
    out = err = status = nil
    Timeout.timeout(PY_TIMEOUT) do
      out, err, status = Open3.capture3({ "PYTHONPATH" => PY_DIR }, @python, "-c", script, *args,
                                        stdin_data: "")
    end
    assert status.success?, "python child failed (#{status.inspect}):\n#{err}"
    out
  end

  def queue(name)
    closing(Reactis::Queue.new(name, url: @redis.url))
  end

  def test_python_schedules_ruby_consumes
    due_at = Time.now.to_f + 0.4
    out = python(<<~PY, @redis.url, PAYLOAD.unpack1("H*"), due_at.to_s)
      import sys, reactis
      url, payload, at = sys.argv[1], bytes.fromhex(sys.argv[2]), float(sys.argv[3])
      q = reactis.Queue("xlang-py2rb", url=url)
      s = q.schedule(payload, at=at, id=b"py:\\x00\\xff:1")
      print(s.id.hex(), s.outcome, s.due_ms)
      q.close()
    PY
    id_hex, outcome, due_ms = out.split
    assert_equal "added", outcome
    id = [id_hex].pack("H*")
    assert_equal "py:\x00\xFF:1".b, id
    assert_equal (due_at * 1000).round, Integer(due_ms)

    q = queue("xlang-py2rb")
    jobs = q.fetch(timeout: 5)
    assert_equal 1, jobs.size
    job = jobs.first
    assert_equal PAYLOAD, job.payload
    assert_equal Encoding::BINARY, job.payload.encoding
    assert_equal id, job.id
    assert_equal Integer(due_ms), job.due_ms
    assert_equal 1, job.attempt
    assert_operator job.delivered_ms, :>=, job.due_ms
    job.ack!
    assert_equal 0, q.stats[:in_flight]
  end

  def test_ruby_schedules_python_consumes
    q = queue("xlang-rb2py")
    id = "rb:\x00\xFF:2".b
    s = q.schedule(PAYLOAD, delay: 0.3, id: id)
    assert s.added?
    out = python(<<~PY, @redis.url)
      import sys, reactis
      q = reactis.Queue("xlang-rb2py", url=sys.argv[1])
      jobs = q.fetch(max=5, timeout=10)
      for j in jobs:
          print(j.id.hex(), j.payload.hex(), j.due_ms, j.attempt)
          j.ack()
      q.close()
    PY
    lines = out.lines.map(&:split)
    assert_equal 1, lines.size, "python consumed #{out.inspect}"
    id_hex, payload_hex, due_ms, attempt = lines.first
    assert_equal id.unpack1("H*"), id_hex
    assert_equal PAYLOAD.unpack1("H*"), payload_hex
    assert_equal s.due_ms, Integer(due_ms)
    assert_equal "1", attempt
    st = q.stats
    assert_equal 1, st[:acked]
    assert_equal 0, st[:scheduled] + st[:ready] + st[:in_flight]
  end

  # Each side generates ids the other accepts, and a generated id names the
  # same message on both sides (cancel from the other language).
  def test_generated_id_cancelled_across
    q = queue("xlang-ids")
    gen = q.schedule("later", delay: 3600)
    out = python(<<~PY, @redis.url, gen.id)
      import sys, reactis
      q = reactis.Queue("xlang-ids", url=sys.argv[1])
      print(q.cancel(sys.argv[2]))
      s = q.schedule(b"from python", delay=3600)
      print(s.id.decode())
      q.close()
    PY
    cancelled, py_id = out.split
    assert_equal "True", cancelled
    assert_match(/\A[0-9A-Za-z]{12}\z/, py_id)
    assert q.cancel(py_id)
    assert_equal 0, q.stats[:scheduled]
  end
end
