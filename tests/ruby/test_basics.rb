# frozen_string_literal: true

require_relative "helper"

class TestBasics < ReactisTest
  def test_versions
    assert_match(/\A\d+\.\d+\.\d+\z/, Reactis::VERSION)
    assert_equal Reactis::VERSION, Reactis.core_version
  end

  def test_redact_url
    assert_equal "redis://user:***@host:6379/0", Reactis.redact_url("redis://user:hunter2@host:6379/0")
    assert_equal "redis://host:6379/0", Reactis.redact_url("redis://host:6379/0")
  end

  def test_error_classes
    e = Reactis::Error.from_status(-9, "EAUTH", "WRONGPASS invalid")
    assert_instance_of Reactis::AuthenticationError, e
    assert_kind_of Reactis::ConnectionError, e
    assert_equal(-9, e.code)
    assert_equal "EAUTH", e.name
    assert_instance_of Reactis::WrongTypeError, Reactis::Error.from_status(-12, "EREPLY", "WRONGTYPE x")
    assert_instance_of Reactis::ReplyError, Reactis::Error.from_status(-12, "EREPLY", "ERR x")
    assert_instance_of Reactis::Error, Reactis::Error.from_status(-99, "UNKNOWN", "new")
    assert_instance_of Reactis::TimeoutError, Reactis::Error.from_status(-6, "ETIMEDOUT", "")
    assert_instance_of Reactis::PayloadTooLargeError, Reactis::Error.from_status(-18, "ETOOBIG", "")
    assert_instance_of Reactis::ProtocolError, Reactis::Error.from_status(-8, "EPROTO", "")
    assert_instance_of Reactis::TLSError, Reactis::Error.from_status(-10, "ETLS", "")
    assert Reactis::Error < StandardError
  end

  def test_bad_urls_and_options
    err = assert_raises(Reactis::URLError) { Reactis::Client.new("http://nowhere") }
    assert_equal "EURL", err.name
    assert_raises(Reactis::URLError) { Reactis::Client.new("redis://localhost", no_such_option: 1) }
    assert_raises(Reactis::URLError) { Reactis::Subscriber.new("redis://localhost?bogus=1") }
    assert_raises(TypeError) { Reactis::Client.new(42) }
    assert_raises(TypeError) { Reactis::Client.new("redis://localhost", timeout: Object.new) }
    assert_raises(ArgumentError) { Reactis::Client.new("redis://localhost", timeout: -1) }
    assert_raises(ArgumentError) { Reactis::Subscriber.new("redis://localhost", batch_size: 0) }
    # A URL with NUL is refused before it reaches C.
    assert_raises(ArgumentError) { Reactis::Client.new("redis://local\0host") }
  end

  def test_wrong_ruby_arguments
    redis = server
    client = closing(Reactis::Client.new(redis.url))
    assert_raises(ArgumentError) { client.command }
    assert_raises(TypeError) { client.command("SET", "k", nil) }
    assert_raises(TypeError) { client.command("SET", "k", true) }
    assert_raises(TypeError) { client.publish(1, "x") }
    assert_raises(TypeError) { client.publish("c", 1) }
    sub = closing(Reactis::Subscriber.new(redis.url))
    assert_raises(ArgumentError) { sub.subscribe }
    assert_raises(TypeError) { sub.subscribe(42) }
    assert_raises(TypeError) { sub.next_message(timeout: "1") }
    assert_raises(ArgumentError) { sub.next_message(timeout: -1) }
    assert_raises(TypeError) { Reactis::Cimpl::Conn.new(redis.url).call("PING") }
    assert_raises(ArgumentError) { Reactis::Cimpl::Conn.new(redis.url).call([]) }
  end

  def test_reply_types
    redis = server
    c = closing(Reactis::Client.new(redis.url))
    assert_equal "PONG", c.command("PING")
    assert_equal Encoding::UTF_8, c.command("PING").encoding
    assert_nil c.command("GET", "missing")
    assert_equal 3, c.command("RPUSH", "l", "a", 2, 3.5)
    assert_equal ["a", "2", "3.5"], c.command("LRANGE", "l", 0, -1)
    err = assert_raises(Reactis::WrongTypeError) { c.command("GET", "l") }
    assert_equal "EWRONGTYPE", err.name
    assert_raises(Reactis::ReplyError) { c.command("NOSUCHCOMMAND") }
    assert_equal "OK", c.command("MULTI")
    c.command("SET", "s", "v")
    c.command("INCR", "s")
    result = c.command("EXEC")
    assert_equal "OK", result[0]
    assert_kind_of Reactis::ReplyError, result[1]
    assert c.connected?
  end

  def test_wrong_password
    redis = server(password: "right-one")
    bad = "redis://:wr0ng-s3cret@127.0.0.1:#{redis.port}/0"
    client = closing(Reactis::Client.new(bad))
    err = assert_raises(Reactis::AuthenticationError) { client.ping }
    assert_equal "EAUTH", err.name
    assert_equal Reactis::Cimpl::EAUTH, err.code
    refute_includes err.message, "wr0ng-s3cret"
    refute_includes err.inspect, "wr0ng-s3cret"
    refute_includes client.inspect, "wr0ng-s3cret"
    sub = closing(Reactis::Subscriber.new(bad))
    err = assert_raises(Reactis::AuthenticationError) { sub.subscribe("x") }
    refute_includes err.message, "wr0ng-s3cret"
    refute_includes sub.inspect, "wr0ng-s3cret"
    assert closing(Reactis::Client.new(redis.url)).ping
  end

  def test_connection_refused
    port = RedisServer.free_port
    c = closing(Reactis::Client.new("redis://127.0.0.1:#{port}/0", connect_timeout: 1))
    err = assert_raises(Reactis::ConnectionError) { c.ping }
    assert_equal "ECONNECT", err.name
  end

  def test_closed_client
    redis = server
    c = Reactis::Client.new(redis.url)
    assert c.ping
    c.close
    assert c.closed?
    assert_raises(Reactis::StateError) { c.ping }
    refute c.connected?
    c.close
    assert_includes c.inspect, "closed"
  end

  def test_logger_is_settable
    io = StringIO.new
    old = Reactis.logger
    Reactis.logger = Logger.new(io, level: Logger::DEBUG)
    redis = server
    sub = closing(Reactis::Subscriber.new(redis.url))
    sub.subscribe("logged")
    assert_includes io.string, "subscribe"
  ensure
    Reactis.logger = old
  end
end
