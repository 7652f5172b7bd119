# frozen_string_literal: true

require_relative "helper"

class TestKeyspaceParsing < ReactisTest
  def test_keyevent
    ev = Reactis::KeyEvent.parse("__keyevent@0__:expired", "session:42")
    assert_equal :keyevent, ev.space
    assert_equal 0, ev.db
    assert_equal "expired", ev.event
    assert_equal "session:42", ev.key
    assert_equal :expired, ev.event_name
    assert ev.known?
    assert_equal Encoding::BINARY, ev.key.encoding
    assert_equal "__keyevent@0__:expired", ev.channel
  end

  def test_keyspace_binary_key
    key = "a:b@c\x00\xFF".b
    ev = Reactis::KeyEvent.parse("__keyspace@15__:".b + key, "set")
    assert_equal :keyspace, ev.space
    assert_equal 15, ev.db
    assert_equal "set", ev.event
    assert_equal key, ev.key
    assert_equal "__keyspace@15__:".b + key, ev.channel
  end

  def test_unknown_event_is_kept
    ev = Reactis::KeyEvent.parse("__keyevent@2__:module_thing", "k")
    assert_equal "module_thing", ev.event
    refute ev.known?
  end

  def test_not_a_notification
    assert_nil Reactis::KeyEvent.parse("chat:room-1", "hello")
    assert_nil Reactis::KeyEvent.parse("__keyevent@x__:expired", "k")
    assert_nil Reactis::KeyEvent.parse("__keyevent@0__", "k")
    assert_nil Reactis::KeyEvent.parse("__keyevent@0__:", "k")
    assert_nil Reactis::KeyEvent.parse("", "")
  end

  def test_wrong_arguments
    assert_raises(TypeError) { Reactis::KeyEvent.parse(42, "k") }
    assert_raises(TypeError) { Reactis::KeyEvent.parse("__keyevent@0__:del", nil) }
  end
end

class TestKeyspaceEvents < ReactisTest
  def test_enable_merges_flags_and_delivers_expired
    redis = server
    assert_equal "", redis.command("CONFIG", "GET", "notify-keyspace-events")[1]
    effective = Reactis.enable_keyspace_events(redis.url, "Ex")
    assert_includes effective, "E"
    assert_includes effective, "x"
    # Only adds: a second call with other flags keeps the first ones.
    effective = Reactis.enable_keyspace_events(redis.url, "Kg")
    %w[K E g x].each { |f| assert_includes effective, f }
    flags = redis.command("CONFIG", "GET", "notify-keyspace-events")[1]
    %w[K E g x].each { |f| assert_includes flags, f }

    sub = closing(Reactis::Subscriber.new(redis.url))
    got = nil
    client = closing(Reactis::Client.new(redis.url))
    sub.psubscribe("__keyevent@*__:expired") do |on|
      on.pmessage do |pattern, channel, key|
        got = [pattern, channel, key, Reactis::KeyEvent.parse(channel, key)]
        sub.stop
      end
      client.command("SET", "conv:C1:U1", "x", "PX", 50)
    end
    pattern, channel, key, ev = got
    assert_equal "__keyevent@*__:expired", pattern
    assert_equal "__keyevent@0__:expired", channel
    assert_equal "conv:C1:U1", key
    assert_equal :keyevent, ev.space
    assert_equal "conv:C1:U1", ev.key
  end

  def test_message_key_event
    redis = server
    Reactis.enable_keyspace_events(redis.url, "K$")
    sub = closing(Reactis::Subscriber.new(redis.url))
    sub.psubscribe("__keyspace@0__:*")
    closing(Reactis::Client.new(redis.url)).command("SET", "k1", "v")
    msg = sub.next_message(timeout: 5)
    assert_equal :set, msg.key_event.event_name
    assert_equal "k1", msg.key_event.key
  end

  def test_unknown_flag_is_invalid
    redis = server
    err = assert_raises(Reactis::InvalidArgumentError) { Reactis.enable_keyspace_events(redis.url, "Eq") }
    assert_equal "EINVAL", err.name
    assert_raises(TypeError) { Reactis.enable_keyspace_events(redis.url, :Ex) }
  end

  def test_config_forbidden
    redis = server(["--rename-command", "CONFIG", ""])
    err = assert_raises(Reactis::ConfigForbiddenError) { Reactis.enable_keyspace_events(redis.url, "Ex") }
    assert_kind_of Reactis::ReplyError, err
    assert_kind_of Reactis::Error, err
    assert_equal "ECONFIG", err.name
    assert_equal Reactis::Cimpl::ECONFIG, err.code
    assert_match(/heroku|ElastiCache|notify-keyspace-events/i, err.message)
  end

  def test_with_a_client
    redis = server
    client = closing(Reactis::Client.new(redis.url))
    assert_includes Reactis.enable_keyspace_events(client, "Ex"), "x"
    assert_raises(ArgumentError) { Reactis.enable_keyspace_events(client, "Ex", timeout: 1) }
  end
end
